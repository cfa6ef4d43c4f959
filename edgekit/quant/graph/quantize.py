"""Capture, annotate, calibrate, convert: the quantized PT2E program and its encodings."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from ...archs.base import ModelBundle
from ...data import DataSet
from ...errors import MissingBackendError
from ...recipe import QuantSpec
from ..encodings import EncodingSet
from ..pt2e import ProgramResult, read_encodings
from .capture import capture
from .passes import GraphPasses
from .profiles import DEFAULT_PROFILE, PROFILES, Profile

if TYPE_CHECKING:
    from .accuracy_aware import RankingGoal

PRODUCER = "edgekit graph"


def graph_quantize(
    model: torch.nn.Module,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    profile: str = DEFAULT_PROFILE,
) -> ProgramResult:
    """Quantize ``model`` (after deploy transforms) into one program under ``profile``."""
    return graph_quantize_profiles(model, bundle, names, calib, q, (profile,))[profile]


def graph_quantize_profiles(
    model: torch.nn.Module,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    profiles: tuple[str, ...],
    accuracy: RankingGoal | None = None,
    log: Any = print,
) -> dict[str, ProgramResult]:
    """One quantized program per profile, from one capture and the same calibration batches.

    Each profile is calibrated on its own copy of the captured graph; a tensor two profiles quantize is observed
    on the same data by the same estimator, so it gets the same scale in both (:func:`merge_encodings` checks).
    With ``accuracy`` (accuracy-aware quantization), the nodes its search keeps in float (on the first profile)
    are left unannotated in every profile."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e  # noqa: F401
    except ImportError:
        raise MissingBackendError("graph", "torchao", "graph", kind="quantizer") from None

    from ..inc import _quiet, _tensors

    batch = q.calibration.batch_size if q.calibration else 32
    sample = _tensors(next(iter(calib.batches(batch)))[0], names)
    with _quiet():
        captured = capture(model, bundle, sample)
        passes = GraphPasses(q, lambda: (_tensors(f, names) for f, _ in calib.batches(batch)))  # recipe passes
        passes.before_calibration(captured, bool(q.activation_symmetric))  # one SmoothQuant for every profile
        exclude, record = frozenset[str](), None
        if accuracy is not None:
            from .accuracy_aware import keep_sensitive_float

            first = PROFILES.get(profiles[0])
            exclude, record = keep_sensitive_float(captured, names, calib, q, first, batch, passes, accuracy, log)
        out = {}
        for name in profiles:
            graph = copy.deepcopy(captured) if len(profiles) > 1 else captured
            out[name] = _quantize_captured(graph, names, calib, q, PROFILES.get(name), batch, exclude)
            passes.after_convert(out[name])  # bias correction of this profile
            if record is not None:
                out[name].info["accuracy_aware"] = record
                out[name].encodings.meta["fp32_nodes"] = sorted(exclude)
    return out


def profile_symmetric(q: QuantSpec, prof: Profile) -> bool:
    """Whether ``prof``'s activations are int8 symmetric: the profile's rule, else the recipe's."""
    return prof.symmetric if prof.symmetric is not None else bool(q.activation_symmetric)


def _quantize_captured(
    captured: torch.fx.GraphModule,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    prof: Profile,
    batch: int,
    exclude: frozenset[str] = frozenset(),
) -> ProgramResult:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ..inc import _tensors
    from .annotate import EdgekitQuantizer
    from .rewrites import apply_rewrites

    symmetric = profile_symmetric(q, prof)
    rewritten = apply_rewrites(captured, prof.rewrites)
    prepared = prepare_pt2e(captured, EdgekitQuantizer(q, prof, symmetric, exclude))
    with torch.no_grad():
        for feeds, _ in calib.batches(batch):
            prepared(*_tensors(feeds, names))
    program = convert_pt2e(prepared, fold_quantize=False)  # Q->DQ pairs on weights: LiteRT needs them
    producer = f"{PRODUCER} (profile {prof.name})"
    encodings = read_encodings(program, producer)
    encodings.meta["data"] = calib.description
    info = {
        "producer": producer,
        "path": "torch.export + PT2E (edgekit quantizer, annotated by op pattern)",
        "profile": prof.name,
        "profile_description": prof.description,
        "quantized_ops": quantized_ops(program, prof),
        "activations": f"{_activation_grid(prof, symmetric)} per tensor, {q.estimator.value}",
        "weights": f"int8 symmetric {'per channel' if q.per_channel else 'per tensor'}",
    }
    if rewritten:
        info["rewrites"] = rewritten
    return ProgramResult(program, encodings, info)


def _activation_grid(prof: Profile, symmetric: bool) -> str:
    if prof.activation_bits == 16:
        return "int16 symmetric"
    return "int8 symmetric" if symmetric else "uint8 asymmetric"


def merge_encodings(results: dict[str, ProgramResult]) -> EncodingSet:
    """The run's one encoding set: every profile's tensors, and per profile the keys it quantizes.

    A key two profiles share has one entry when their encodings agree (the same tensor, data and estimator);
    where a profile forces another grid (TensorRT's symmetric activations) its entry is ``KEY@PROFILE``."""
    merged = EncodingSet(meta={"producer": PRODUCER, "keys": "<module>/<graph node>.<weight|input|output>"})
    merged.meta["profiles"] = {}
    for name, res in results.items():
        merged.meta.setdefault("data", res.encodings.meta.get("data"))
        keys = []
        for key, enc in res.encodings.tensors.items():
            if key in merged.tensors and merged.tensors[key] != enc:
                key = f"{key}@{name}"
            merged.tensors[key] = enc
            keys.append(key)
        merged.meta["profiles"][name] = sorted(keys)
        if "fp32_nodes" in res.encodings.meta:  # accuracy-aware: the same nodes in float on every profile
            merged.meta["fp32_nodes"] = res.encodings.meta["fp32_nodes"]
    return merged


def quantized_ops(program: torch.fx.GraphModule, prof: Profile | None = None) -> dict[str, int]:
    """Per op kind (of those ``prof`` quantizes), how many graph nodes read at least one dequantized tensor (the
    report's coverage line)."""
    from ..pt2e import _dequantize_ops, _is
    from .annotate import OP_KINDS

    out: dict[str, int] = {}
    for node in program.graph.nodes:
        pattern = OP_KINDS.get(node.target) if node.op == "call_function" else None
        if pattern and prof is not None and pattern.kind not in prof.roles:
            continue
        if pattern and any(isinstance(a, torch.fx.Node) and _is(a, *_dequantize_ops()) for a in node.args):
            out[pattern.kind] = out.get(pattern.kind, 0) + 1
    return out
