"""Per-layer divergence: where does a compiled artifact's output first depart from the simulated model?

Every quantized layer of the simulated model (a ``QuantWrapper``, named after the module it wraps) is located in
the runtime's graph by its module scope (the exporter names each node ``/hf/vit/layers.0/attention/q_proj/...``);
the layer's output is the tensor that leaves that scope (``targets/layer_probe.py``). The target that runs the
artifact's runtime asks it for those tensors as extra outputs (``Target.layer_outputs``, found by runtime name
through ``targets.base.layer_probes``; ONNX Runtime's in ``targets/onnxrt.py``: extra graph outputs; OpenVINO's in
``targets/openvino.py``: ``Model.add_outputs``), run on a few validation samples, and each is compared with the
same layer's output in the simulated model (did the runtime do what the encodings say?) and in the FP32 model (how
much the quantization itself costs up to here), as SQNR in dB, in execution order.

The first layer whose SQNR against the simulation falls below ``threshold_db`` is where the artifact departs; when
none does, the artifact is faithful and the loss is the quantization itself: the layer where the SQNR against
FP32 falls most is where it enters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataSet
from ..metrics import sqnr_db
from ..nn.capture import on_outputs
from ..targets.base import layer_probes
from ..targets.layer_probe import Node, layer_exits, scope_of

__all__ = ["THRESHOLD_DB", "Node", "divergence", "layer_exits", "scope_of", "torch_layer_outputs"]

THRESHOLD_DB = 30.0


def torch_layer_outputs(
    model: torch.nn.Module, layers: list[str], names: list[str], data: DataSet
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Outputs of the modules named ``layers`` (first call each) and the order in which they ran."""
    store: dict[str, np.ndarray] = {}
    order: list[str] = []

    def record(layer: str, out: Any) -> None:
        if layer not in store:
            store[layer] = out.detach().float().numpy().copy()
            order.append(layer)

    with on_outputs([(layer, model.get_submodule(layer)) for layer in layers], record), torch.inference_mode():
        model(*[torch.from_numpy(data.inputs[n]) for n in names])
    return store, order


def divergence(
    artifact_dir: Path,
    meta: dict[str, Any],
    sim: torch.nn.Module,
    fp32: torch.nn.Module,
    names: list[str],
    data: DataSet,
    threshold_db: float = THRESHOLD_DB,
) -> dict[str, Any]:
    """Per-layer SQNR of the artifact vs the simulated and the FP32 model, in execution order."""
    from ..quant.fakequant import wrappers

    probe = layer_probes().get(meta["runtime"]).layer_outputs
    layers = [w.qname for w in wrappers(sim)]
    sim_out, order = torch_layer_outputs(sim, layers, names, data)
    fp_out, _ = torch_layer_outputs(fp32, layers, names, data)
    feeds = {k: v for k, v in data.inputs.items()}
    got = probe(artifact_dir, meta, layers, feeds)
    rows = []
    for layer in order:
        if layer not in got:
            rows.append({"layer": layer, "found": False})
            continue
        (a, pre_bias), s, f = got[layer], sim_out[layer], fp_out[layer]
        if pre_bias:
            s, f = _without_bias(s, sim, layer), _without_bias(f, sim, layer)
        if a.shape != s.shape:
            rows.append({"layer": layer, "found": False, "note": f"shape {list(a.shape)} vs {list(s.shape)}"})
            continue
        quantized = any(w.qname == layer and (w.quantize_act or w.quantize_weight) for w in wrappers(sim))
        rows.append(
            {
                "layer": layer,
                "found": True,
                "int8": quantized,
                "pre_bias": pre_bias,  # compared before the bias add (the runtime moved it out of the layer)
                "sqnr_vs_sim_db": _finite(sqnr_db(s, a)),
                "sqnr_vs_fp32_db": _finite(sqnr_db(f, a)),
                "sim_sqnr_vs_fp32_db": _finite(sqnr_db(f, s)),
            }
        )
    found = [r for r in rows if r["found"]]
    first = next((r["layer"] for r in found if r["sqnr_vs_sim_db"] < threshold_db), None)
    # where the quantization error enters: the largest fall of the simulated model's SQNR vs FP32 from one layer to
    # the next in execution order (the first layer falls from the best value seen: nothing came before it)
    sims = [r["sim_sqnr_vs_fp32_db"] for r in found]
    drops = [
        ((sims[i - 1] if i else max(sims)) - v, r["layer"])
        for i, (v, r) in enumerate(zip(sims, found))
        if r["int8"]  # error enters only where something is quantized
    ]
    worst = max(drops)[1] if drops else None
    return {
        "target": meta["target"],
        "precision": meta["precision"],
        "runtime": meta["runtime"],
        "samples": len(data),
        "threshold_db": threshold_db,
        "layers": rows,
        "located": len(found),
        "first_departure": first,
        "largest_fp32_drop_at": worst,
        "verdict": _verdict(first, worst, threshold_db, len(found), len(rows)),
    }


def _without_bias(out: np.ndarray, sim: torch.nn.Module, layer: str) -> np.ndarray:
    """A Linear/Conv output minus its bias (channel axis last for Linear, 1 for Conv)."""
    module = sim.get_submodule(layer)
    bias = getattr(module, "bias", None)
    if bias is None:
        return out
    b = bias.detach().float().numpy()
    inner = getattr(module, "layer", module)
    if isinstance(inner, torch.nn.Linear):
        return out - b
    return out - b.reshape(1, -1, *([1] * (out.ndim - 2)))


def _finite(v: float) -> float:
    return 200.0 if not np.isfinite(v) else float(v)


def _verdict(first: str | None, worst: str | None, threshold: float, found: int, total: int) -> str:
    if not found:
        return "no quantized layer could be located in the artifact's graph"
    if first:
        return f"the artifact first departs from the simulated model at '{first}' (SQNR < {threshold:.0f} dB)"
    return (
        f"the artifact follows the simulated model at every located layer ({found} of {total}); the loss is the "
        f"quantization itself, entering mostly at '{worst}' (largest SQNR drop vs FP32)"
    )
