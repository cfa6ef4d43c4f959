"""``quantizer: neural-compressor``: Intel Neural Compressor (``neural-compressor-pt`` 3.x) makes the INT8 program.

INC's PT2E static path: its ``export`` (``torch.export``), ``prepare`` with a ``StaticQuantConfig`` (its x86
quantizer: per-channel symmetric int8 weights, per-tensor uint8 activations on conv/linear inputs), calibration on
the recipe's calibration data, ``convert``. The result is a GraphModule with quantized_decomposed Q/DQ ops: it
is the simulated model every INT8 artifact is compared with, and the targets lower it (see
:mod:`edgekit.targets.pt2e_lowering`). Its scales are read back into ``encodings.json``.

``inc: {autotune: true}`` runs INC's ``autotune`` over an ordered set of static configs with the recipe's
metric on the recipe's validation data as ``eval_fn``; INC's tolerable loss is relative to the FP32 value, so
the recipe's absolute budget is divided by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from ..archs.base import ModelBundle
from ..data import DataSet
from ..errors import MissingBackendError, ModelError
from ..recipe import INC_ACT_ALGO, IncSpec, QuantSpec
from .graph.capture import as_tensors, dynamic_shapes, quiet
from .pt2e import ProgramResult, read_encodings

PRODUCER = "neural-compressor"


def require_installed() -> None:
    """Fail before any work when the package is missing (no import: it is slow)."""
    import importlib.util

    if importlib.util.find_spec("neural_compressor") is None:
        raise MissingBackendError(PRODUCER, "neural_compressor", "inc", kind="quantizer")


def _require():
    try:
        with quiet():  # it logs the accelerator it detects at import, and every step after
            import neural_compressor.torch.export  # noqa: F401
            import neural_compressor.torch.quantization as incq
        from neural_compressor.common.utils.logger import Logger

        Logger().get_logger().setLevel(logging.ERROR)  # its singleton resets the level when first created
    except ImportError:
        raise MissingBackendError(PRODUCER, "neural_compressor", "inc", kind="quantizer") from None
    return incq


def configs(q: QuantSpec, spec: IncSpec) -> list[Any]:
    """The static config, then (autotune) the alternatives INC tries in order: the other observer, symmetric."""
    incq = _require()
    first = INC_ACT_ALGO[q.estimator.value]
    other = "kl" if first == "minmax" else "minmax"
    w_gran = "per_channel" if q.per_channel else "per_tensor"
    grid = [(first, False), (other, False), (first, True), (other, True)]
    if q.activation_symmetric:
        grid = [g for g in grid if g[1]]
    out = [
        incq.StaticQuantConfig(act_algo=algo, act_sym=sym, act_dtype="int8" if sym else "uint8", w_granularity=w_gran)
        for algo, sym in grid
    ]
    return out[: spec.max_trials] if spec.autotune else out[:1]


def describe(cfg: Any) -> str:
    return (
        f"act {cfg.act_dtype} {'sym' if cfg.act_sym else 'asym'} {cfg.act_algo}, "
        f"weights {cfg.w_dtype} {cfg.w_granularity}"
    )


def inc_quantize(
    model: torch.nn.Module,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    evaluate: Callable[[torch.nn.Module], float] | None,
    budget: float,
    log: Any = print,
) -> ProgramResult:
    """Quantize ``model`` with INC; ``evaluate`` (a metric, higher is better) is needed only for autotune."""
    incq = _require()
    from neural_compressor.torch.export import export

    spec = q.inc or IncSpec()
    batch = q.calibration.batch_size if q.calibration else 32
    sample = as_tensors(next(iter(calib.batches(batch)))[0], names)

    def calibrate(m: torch.nn.Module) -> None:
        with torch.no_grad():
            for feeds, _ in calib.batches(batch):
                m(*as_tensors(feeds, names))

    with quiet():
        try:
            captured = export(model.eval(), sample, dynamic_shapes=dynamic_shapes(bundle, len(sample), model))
        except RuntimeError as exc:
            raise ModelError(
                f"neural-compressor: torch.export could not capture the model ({str(exc).splitlines()[0]}); "
                "edgekit's own quantizer captures non-strict (Python runs as Python): quantizer: edgekit"
            ) from None
        candidates = configs(q, spec)
        info: dict[str, Any] = {"producer": f"{PRODUCER} {_version()}", "path": "PT2E static (x86 quantizer)"}
        if spec.autotune:
            if evaluate is None:
                raise ModelError("neural-compressor autotune needs validation data")
            baseline = evaluate(model)
            tolerable = budget / abs(baseline) if baseline else budget
            trials: list[dict[str, Any]] = []

            def eval_fn(m: torch.nn.Module) -> float:
                if not trials:  # INC's first call scores its FP32 copy of the model: that is ``baseline``
                    trials.append({"metric": baseline})
                    return baseline
                trials.append({"metric": float(evaluate(m))})
                return trials[-1]["metric"]

            # max_trials = the set's size: INC then stops (returning its best) after the last config too
            tune = incq.TuningConfig(config_set=candidates, max_trials=len(candidates), tolerable_loss=tolerable)
            program = incq.autotune(captured, tune, eval_fn=eval_fn, run_fn=calibrate, example_inputs=sample)
            trials = trials[1:]
            for t, cfg in zip(trials, candidates):
                t["config"] = describe(cfg)
            info["autotune"] = {
                "fp32": baseline,
                "budget": budget,
                "tolerable_loss_relative": tolerable,
                "max_trials": spec.max_trials,
                "trials": trials,
            }
            log(f"neural-compressor autotune: {len(trials)} trial(s), fp32 {baseline:.4f}")
        else:
            prepared = incq.prepare(captured, candidates[0])
            calibrate(prepared)
            program = incq.convert(prepared)
        info["config"] = describe(_chosen(program, candidates))
    encodings = read_encodings(program, info["producer"])
    encodings.meta["data"] = calib.description
    return ProgramResult(program, encodings, info)


def _chosen(program: torch.fx.GraphModule, candidates: list[Any]) -> Any:
    """The config INC kept (autotune re-quantizes with its best one and attaches it as ``qconfig``)."""
    mapping = getattr(program, "qconfig", None) or {}
    return next(iter(mapping.values()), candidates[0])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neural-compressor-pt")
    except PackageNotFoundError:
        return "unknown"
