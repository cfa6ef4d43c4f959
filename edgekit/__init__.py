"""edgekit: quantize, compile and validate PyTorch models for edge targets.

The public API is re-exported lazily so ``import edgekit`` loads no backend (and not even PyTorch).
"""

from __future__ import annotations

from typing import Any

from .version import __version__ as __version__

__all__ = ["benchmark", "export", "load_recipe", "quantize", "run_recipe", "validate"]


def load_recipe(path: Any) -> Any:
    """Load and validate a recipe YAML file."""
    from .recipe import load_recipe as _load

    return _load(path)


def run_recipe(recipe: Any, out: Any, force: bool = False, reduced: bool = False, **kw: Any) -> Any:
    """Run a recipe (object or YAML path) into ``out``; returns a RunResult with ``.report`` and ``.passed``.

    ``reduced=True`` runs it tiny and fast (see ``edgekit.reduced``): for CI, not for results."""
    from .pipeline import run_recipe as _run

    if not hasattr(recipe, "targets"):
        recipe = load_recipe(recipe)
    if reduced:
        from .reduced import reduce_recipe

        recipe = reduce_recipe(recipe)
    return _run(recipe, out, force=force, **kw)


def export(
    model: Any,
    out: Any,
    targets: Any = ("onnx",),
    precisions: Any = ("fp32", "int8"),
    calib: Any = None,
    val: Any = None,
    inputs: Any = None,
    force: bool = False,
    **kw: Any,
) -> Any:
    """Export ``model`` (a source string or an ``nn.Module`` with ``inputs``) to ``targets``; validated.

    ``calib``/``val`` are data spec strings (``"fashion-mnist:train"``, ``"x.npz"``) or DataSpec objects.
    """
    from .pipeline import run_recipe as _run
    from .recipe import DataSpec, ModelSpec, Precision, QuantSpec, Recipe, TargetSpec, TensorSpec, ValidationSpec
    from .registry_models import register_module

    def data(d: Any) -> Any:
        return DataSpec.parse(d) if isinstance(d, str) else d

    source = register_module(model) if not isinstance(model, str) else model
    specs = tuple(TensorSpec(**i) if isinstance(i, dict) else i for i in inputs) if inputs else None
    recipe = Recipe(
        name=kw.pop("name", "export"),
        model=ModelSpec(source),
        targets=tuple(
            TargetSpec(t, tuple(Precision(p) for p in precisions))
            for t in ([targets] if isinstance(targets, str) else targets)
        ),
        inputs=specs,
        quantization=QuantSpec(calibration=data(calib) if calib else None),
        validation=ValidationSpec(data=data(val) if val else None),
    )
    return _run(recipe, out, force=force, **kw)


def quantize(model: Any, data: Any, input_names: Any, spec: Any = None, profile: str = "ort_ov") -> Any:
    """Quantize ``model`` on ``data`` (a DataSet) with edgekit's quantizer (``torch.export`` + PT2E, annotated by op
    pattern under ``profile``); returns (the quantized program, a GraphModule, and its EncodingSet)."""
    from .quant import calibrate
    from .recipe import QuantSpec

    cal = calibrate(model, list(input_names), data, spec or QuantSpec(), profile=profile)
    return cal.sim, cal.encodings


def validate(run_dir: Any) -> Any:
    """Re-validate the artifacts of a run directory against its stored reference outputs, after checking every
    file against its manifest (IntegrityError on a mismatch); writes nothing."""
    from pathlib import Path

    from .rerun import revalidate

    return revalidate(Path(run_dir), progress=False)


def benchmark(run_dir: Any, **kw: Any) -> Any:
    """Re-benchmark the artifacts of a run directory (each in its own process)."""
    from pathlib import Path

    from .rerun import rebench

    return rebench(Path(run_dir), progress=False, **kw)
