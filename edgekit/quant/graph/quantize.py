"""Capture, annotate, calibrate, convert: the quantized PT2E program and its encodings."""

from __future__ import annotations

import torch

from ...archs.base import ModelBundle
from ...data import DataSet
from ...errors import MissingBackendError
from ...recipe import QuantSpec
from ..pt2e import ProgramResult, read_encodings
from .capture import capture
from .passes import GraphPasses
from .profiles import DEFAULT_PROFILE, PROFILES

PRODUCER = "edgekit graph"


def graph_quantize(
    model: torch.nn.Module,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    profile: str = DEFAULT_PROFILE,
) -> ProgramResult:
    """Quantize ``model`` (after deploy transforms) into one program that every target lowers."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        raise MissingBackendError("graph", "torchao", "graph", kind="quantizer") from None

    from ..inc import _quiet, _tensors
    from .annotate import EdgekitQuantizer

    prof = PROFILES.get(profile)
    symmetric = prof.symmetric if prof.symmetric is not None else bool(q.activation_symmetric)
    batch = q.calibration.batch_size if q.calibration else 32
    sample = _tensors(next(iter(calib.batches(batch)))[0], names)
    with _quiet():
        captured = capture(model, bundle, sample)
        passes = GraphPasses(q, lambda: (_tensors(f, names) for f, _ in calib.batches(batch)), symmetric)  # smooth
        passes.before_calibration(captured)  # smooth
        prepared = prepare_pt2e(captured, EdgekitQuantizer(q, prof, symmetric))
        with torch.no_grad():
            for feeds, _ in calib.batches(batch):
                prepared(*_tensors(feeds, names))
        program = convert_pt2e(prepared, fold_quantize=False)  # Q->DQ pairs on weights: LiteRT needs them
        passes.after_convert(program)  # smooth
    producer = f"{PRODUCER} (profile {prof.name})"
    encodings = read_encodings(program, producer)
    encodings.meta["data"] = calib.description
    info = {
        "producer": producer,
        "path": "torch.export + PT2E (edgekit quantizer, annotated by op pattern)",
        "profile": prof.name,
        "profile_description": prof.description,
        "quantized_ops": quantized_ops(program),
        "activations": f"{'int8 symmetric' if symmetric else 'uint8 asymmetric'} per tensor, {q.estimator.value}",
        "weights": f"int8 symmetric {'per channel' if q.per_channel else 'per tensor'}",
    }
    info.update(passes.info)  # smooth: smooth_quant / bias_correction / weight_clipping
    return ProgramResult(program, encodings, info)


def quantized_ops(program: torch.fx.GraphModule) -> dict[str, int]:
    """Per op kind, how many graph nodes read at least one dequantized tensor (the report's coverage line)."""
    from ..pt2e import _dequantize_ops, _is
    from .annotate import OP_KINDS

    out: dict[str, int] = {}
    for node in program.graph.nodes:
        pattern = OP_KINDS.get(node.target) if node.op == "call_function" else None
        if pattern and any(isinstance(a, torch.fx.Node) and _is(a, *_dequantize_ops()) for a in node.args):
            out[pattern.kind] = out.get(pattern.kind, 0) + 1
    return out
