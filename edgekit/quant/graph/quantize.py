"""Capture, annotate, calibrate, convert: the quantized PT2E program and its encodings."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ...archs.base import ModelBundle
from ...data import DataSet
from ...errors import CalibrationError, MissingBackendError
from ...recipe import QuantSpec
from ..encodings import EncodingSet
from ..pt2e import ProgramResult, read_encodings
from .capture import as_tensors, capture, quiet
from .ignore import ignored_nodes
from .passes import GraphPasses
from .profiles import DEFAULT_PROFILE, PROFILES, Profile

if TYPE_CHECKING:
    from .accuracy_aware import RankingGoal

PRODUCER = "edgekit"


def graph_quantize(
    model: torch.nn.Module,
    bundle: ModelBundle | None,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    profile: str = DEFAULT_PROFILE,
) -> ProgramResult:
    """Quantize ``model`` (after deploy transforms) into one program under ``profile``."""
    return graph_quantize_profiles(model, bundle, names, calib, q, (profile,))[profile]


def graph_quantize_profiles(
    model: torch.nn.Module,
    bundle: ModelBundle | None,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    profiles: tuple[str, ...],
    accuracy: RankingGoal | None = None,
    log: Any = print,
    progress: bool = False,
    keep_float: frozenset[str] = frozenset(),
) -> dict[str, ProgramResult]:
    """One quantized program per profile, from one capture and the same calibration batches.

    ``bundle`` gives the IO spec's dynamic axes (None: a bare module, batch axis dynamic). Each profile is
    calibrated on its own copy of the captured graph; a tensor two profiles quantize is observed on the same data by
    the same estimator, so it gets the same scale in both (:func:`merge_encodings` checks). Nodes the recipe's
    ``ignore`` globs name, and with ``accuracy`` (accuracy-aware quantization) the nodes its search keeps in float
    (on the first profile), are left unannotated in every profile; ``keep_float`` names such nodes directly (a
    rebuild of a run's program from its encodings.json ``meta.fp32_nodes``, without searching again)."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e  # noqa: F401
    except ImportError:
        raise MissingBackendError("edgekit", "torchao", "graph", kind="quantizer") from None

    if len(calib) == 0:
        raise CalibrationError("calibration data is empty")
    batch = q.calibration.batch_size if q.calibration else 32
    sample = as_tensors(next(iter(calib.batches(batch)))[0], names)
    with quiet():
        captured = capture(model, bundle, sample)
        passes = GraphPasses(q, lambda: (as_tensors(f, names) for f, _ in calib.batches(batch)))  # recipe passes
        passes.before_calibration(captured, bool(q.activation_symmetric))  # once for every profile
        ignored = ignored_nodes(captured, q.ignore)
        kept, record = frozenset(keep_float), None
        if accuracy is not None:
            from .accuracy_aware import keep_sensitive_float

            first = PROFILES.get(profiles[0])
            kept, record = keep_sensitive_float(captured, names, calib, q, first, batch, passes, accuracy, log, ignored)
        exclude = ignored | kept
        out = {}
        for name in profiles:
            graph = copy.deepcopy(captured) if len(profiles) > 1 else captured
            out[name] = _quantize_captured(graph, names, calib, q, PROFILES.get(name), batch, exclude, progress)
            passes.after_convert(out[name])  # bias correction of this profile
            if q.ignore:
                out[name].info["ignored"] = {"patterns": list(q.ignore), "nodes": sorted(ignored)}
                out[name].encodings.meta["ignored_nodes"] = sorted(ignored)
            if record is not None:
                out[name].info["accuracy_aware"] = record
            if kept:
                out[name].encodings.meta["fp32_nodes"] = sorted(kept)
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
    progress: bool = False,
) -> ProgramResult:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .annotate import EdgekitQuantizer
    from .rewrites import apply_rewrites

    if q.quantize_outputs:
        prof = prof.with_outputs()
    symmetric = profile_symmetric(q, prof)
    rewritten = apply_rewrites(captured, prof.rewrites)
    prepared = prepare_pt2e(captured, EdgekitQuantizer(q, prof, symmetric, exclude))
    steps = -(-len(calib) // batch)
    with torch.no_grad():
        for feeds, _ in tqdm(
            calib.batches(batch),
            total=steps,
            desc=f"calibrate ({prof.name})",
            unit="batch",
            disable=None if progress else True,
            leave=False,
        ):
            prepared(*as_tensors(feeds, names))
    program = convert_pt2e(prepared, fold_quantize=False)  # Q->DQ pairs on weights: LiteRT needs them
    ops = quantized_ops(program, prof)
    if not ops:
        why = f" after the ignore list {list(q.ignore)}; relax quantization.ignore" if q.ignore else ""
        raise CalibrationError(f"int8: the model has no quantizable op (linear, conv, matmul, embedding, add){why}")
    producer = f"{PRODUCER} (profile {prof.name})"
    encodings = read_encodings(program, producer)
    encodings.meta["data"] = calib.description
    info = {
        "producer": producer,
        "path": "torch.export + PT2E (edgekit quantizer, annotated by op pattern)",
        "profile": prof.name,
        "profile_description": prof.description,
        "quantized_ops": ops,
        "activations": f"{_activation_grid(prof, symmetric)} per tensor",
        "weights": f"int8 symmetric {'per channel' if q.per_channel else 'per tensor'}",
    }
    if q.quantize_outputs:
        info["outputs"] = "every quantized op's output too (quantize_outputs)"
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


def quantized_op_nodes(program: torch.fx.GraphModule, prof: Profile | None = None) -> list[torch.fx.Node]:
    """The op-pattern nodes (linear, conv, matmul, ...; of the kinds ``prof`` quantizes) that read at least one
    dequantized tensor, in graph order."""
    from ..pt2e import _dequantize_ops, _is
    from .ops import OP_KINDS

    return [
        node
        for node in program.graph.nodes
        if node.op == "call_function"
        and node.target in OP_KINDS
        and (prof is None or OP_KINDS[node.target].kind in prof.roles)
        and any(isinstance(a, torch.fx.Node) and _is(a, *_dequantize_ops()) for a in node.args)
    ]


def quantized_ops(program: torch.fx.GraphModule, prof: Profile | None = None) -> dict[str, int]:
    """Per op kind (of those ``prof`` quantizes), how many graph nodes read at least one dequantized tensor (the
    report's coverage line)."""
    from .ops import OP_KINDS

    out: dict[str, int] = {}
    for node in quantized_op_nodes(program, prof):
        kind = OP_KINDS[node.target].kind
        out[kind] = out.get(kind, 0) + 1
    return out
