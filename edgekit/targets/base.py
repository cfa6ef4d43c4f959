"""The Target interface and registry. Every target: available(), compile(), load(), run().

Each target declares a frozen dataclass of typed options (``Target.options``; :class:`~edgekit.config.NoOptions`
when it takes none). A recipe's ``targets: [{name, options: {...}}]`` mapping is parsed into it with
:func:`edgekit.config.from_dict` when the recipe is checked (:meth:`Target.check_spec`, at plan time and by
``edgekit recipe check``), so an unknown or wrongly typed option fails at load with a one-line RecipeError naming
the target and the key. :meth:`Target.export` is the one place a mapping becomes that object (callers keep
passing dicts); ``compile`` receives the parsed object. What ``artifact.json`` records under ``options`` stays a
plain dict written by each target.
"""

from __future__ import annotations

import importlib.util
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archs.base import ModelBundle
from ..config import NoOptions, from_dict
from ..data import DataSet
from ..device import runner
from ..errors import MissingBackendError, RecipeError, UnsupportedOpError, first_line_or_type
from ..quant import EncodingSet
from ..recipe import Precision, QuantSpec, TargetSpec, TensorSpec
from ..registry import Registry


@dataclass
class CompileContext:
    """Everything a target needs; ``cache`` shares intermediate exports (the ONNX files) between targets."""

    bundle: ModelBundle
    model: torch.nn.Module  # FP32, after transforms
    sim: torch.nn.Module | None  # the quantized PT2E program of the target's profile (None: no int8 asked for)
    encodings: EncodingSet | None
    quant: QuantSpec
    calib: DataSet | None
    workdir: Path
    opset: int = 18
    cache: dict[str, Any] = field(default_factory=dict)
    recipe_yaml: str = ""  # embedded in artifacts that carry metadata (CoreML)


STATIC_SEQUENCE = 64  # sequence length of a static-shape program when no calibration data fixes it


def static_sample(ctx: CompileContext) -> tuple[torch.Tensor, ...]:
    """Batch-1 example inputs of a static-shape program (LiteRT, ExecuTorch): the first calibration sample when
    there is calibration data (its sequence length becomes the program's static shape), else synthetic ones."""
    if ctx.calib is not None:
        return tuple(torch.from_numpy(ctx.calib.inputs[s.name][:1]) for s in ctx.bundle.inputs)
    return ctx.bundle.example_inputs(1, STATIC_SEQUENCE)


@dataclass
class Artifact:
    target: str
    precision: Precision
    path: Path  # directory holding artifact.json and the model files
    runtime: str
    file: str
    quantizer: str | None = None  # "edgekit" | "native" | "neural-compressor" for int8
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file() and f.name != "artifact.json") / 1e6

    def write_meta(self, bundle: ModelBundle, inputs: tuple[TensorSpec, ...] | None = None) -> None:
        meta = {
            "format": "edgekit-artifact/1",
            "target": self.target,
            "precision": self.precision.value,
            "runtime": self.runtime,
            "file": self.file,
            "quantizer": self.quantizer,
            "notes": self.notes,
            "options": self.options,
            "output": bundle.output_name,
            "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in inputs or bundle.inputs],
        }
        (self.path / "artifact.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def read(cls, path: Path) -> Artifact:
        m = runner.read_meta(path)
        return cls(
            m["target"],
            Precision(m["precision"]),
            Path(path),
            m["runtime"],
            m["file"],
            m.get("quantizer"),
            m.get("notes", []),
            m.get("options", {}),
        )


class Target(ABC):
    name: str
    runtime: str  # the runtime in the device runner that executes the artifact
    module: str  # the Python package the target needs
    extra: str  # pip extra that installs it
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.INT8)
    options: type = NoOptions  # a frozen dataclass; its defaults are the target's defaults
    measures_latency = True  # False where the real runtime cannot run here (the report says "not measured here")
    validation_limit: int | None = None  # validate on at most this many samples (slow reference execution)
    # the quantization profile this target lowers (edgekit.quant.graph.profiles): which tensors get Q/DQ
    quant_profile = "ort_ov"

    def quant_problem(self, quant: QuantSpec) -> str | None:
        """Why this target cannot take the recipe's INT8 encodings (None when it can)."""
        return None

    def profile(self, options: Any) -> str:
        """The quantization profile this target lowers under its parsed ``options``: ``quant_profile`` unless
        an option picks another (tflite's ``activations: int16``)."""
        return self.quant_profile

    def cannot_express(self, quant: QuantSpec) -> str | None:
        """Why this target cannot lower the INT8 program of the recipe's quantizer (None when it can). The run
        gets a row with status ``unsupported`` and this reason instead of the artifact."""
        return None

    def cannot_run_here(self, artifact: Artifact) -> str | None:
        """Why this built artifact cannot be executed on this machine (None when it can). Such an artifact is kept
        in the run directory, its row says why it was not validated here, and it is run on its device instead."""
        return None

    def io_spec(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        """The inputs as the artifact declares them (a target may change dtypes, e.g. int64 -> int32)."""
        return inputs

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def available(self) -> tuple[bool, str]:
        """(can compile and run here, why not)."""
        if not self.installed():
            return False, f"not installed: pip install 'edgekit[{self.extra}]'"
        return True, "installed, runs on this machine"

    def require(self) -> None:
        if not self.installed():
            raise MissingBackendError(self.name, self.module, self.extra)

    def parse_options(self, options: Mapping[str, Any] | Any | None = None) -> Any:
        """The typed options from a recipe's mapping (an instance of ``self.options`` passes through); an unknown
        key, a wrong type or an out-of-range value raises RecipeError naming the target and the key."""
        value = dict(options) if isinstance(options, Mapping) else ({} if options is None else options)
        return from_dict(self.options, value, f"target {self.name}: options")

    def check_spec(self, spec: TargetSpec) -> Any:
        """Check a recipe's target entry (precisions and options) without the backend; returns the parsed
        options."""
        for p in spec.precisions:
            if p not in self.precisions:
                raise RecipeError(
                    f"target '{self.name}' does not support precision '{p.value}' "
                    f"(supports {', '.join(x.value for x in self.precisions)})"
                )
        return self.parse_options(spec.options)

    @abstractmethod
    def compile(self, ctx: CompileContext, precision: Precision, options: Any, out: Path) -> Artifact:
        """Write the artifact for ``precision`` into the empty directory ``out``; ``options``: an instance of
        ``self.options``."""

    def export(
        self, ctx: CompileContext, precision: Precision, options: Mapping[str, Any] | Any | None, out: Path
    ) -> Artifact:
        """Parse ``options`` (a recipe's mapping or the typed object), compile, then write ``artifact.json`` with
        the IO spec as this target's file declares it."""
        from .binary_lowering import describe

        art = self.compile(ctx, precision, self.parse_options(options), out)
        describe(self.name, ctx.model, art)  # 1-bit weights: lowered by this target, or simulated
        art.write_meta(ctx.bundle, self.io_spec(ctx.bundle.inputs))
        return art

    def load(self, artifact: Artifact, threads: int = 2) -> Any:
        self.require()
        try:
            return runner.load(artifact.path, threads)
        except Exception as exc:  # runtimes raise their own types; name the op when they say it
            raise UnsupportedOpError(
                f"{self.name} cannot load {artifact.path.name}: {first_line_or_type(exc)}"
            ) from None

    def run(self, session: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(feeds)

    # True where layer_outputs() is implemented: the per-node divergence (``edgekit diagnose``) of artifacts run by
    # this target's runtime (``layer_probes``)
    exposes_layer_outputs = False

    def layer_outputs(
        self, path: Path, meta: dict[str, Any], tensors: list[str], feeds: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The values of the tensors named ``tensors`` (the quantized program's node names, as the exporter names
        their outputs) in the artifact at ``path`` (``meta``: its artifact.json) run by this target's runtime on
        ``feeds``; a tensor its graph does not have is left out."""
        raise NotImplementedError(f"{self.name}: runtime '{self.runtime}' exposes no intermediate outputs here")

    def lower_binary(self, program: Any, expected: int, art: Artifact) -> Any:
        """``program`` (this target's converted model) with its ``expected`` +-1 weight tensors in the target's 1-bit
        form, recorded in ``art`` (``binary_lowering.record``). This default has no 1-bit format: the program is
        unchanged and ``export`` notes the weights as simulated (``binary_lowering.describe``)."""
        return program


def ids_as_int32(inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """The IO spec of runtimes without int64 tensors (LiteRT, Core ML): int64 ids are declared int32."""
    return tuple(TensorSpec(s.name, s.shape, "int32" if s.dtype == "int64" else s.dtype) for s in inputs)


TARGETS: Registry[Target] = Registry("target")


def _register_all() -> None:
    # importing registers; backends load lazily
    from . import coreml, executorch, onnxrt, openvino, tensorrt, tflite  # noqa: F401


def get_target(name: str) -> Target:
    _register_all()
    return TARGETS.get(name)


def all_targets() -> list[Target]:
    _register_all()
    return [TARGETS.get(n) for n in TARGETS.names()]


def layer_probes() -> Registry[Target]:
    """Runtime name (an artifact's ``runtime``) -> the target whose ``layer_outputs`` probes artifacts run by it: a
    tensorrt artifact, validated in ONNX Runtime, is probed by the onnx target."""
    probes: Registry[Target] = Registry("runtime with intermediate outputs")
    for t in sorted(all_targets(), key=lambda t: t.runtime):
        if t.exposes_layer_outputs and t.runtime not in probes:
            probes.add(t.runtime, t)
    return probes
