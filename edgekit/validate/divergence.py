"""Per-node divergence: where does a compiled artifact's output first depart from its simulated program?

The unit is a graph node: every op the profile's quantized program runs on dequantized inputs (a ``linear``,
``conv``, ``matmul``, ``embedding``, ``add`` ...), named ``<module>/<node>`` as in encodings.json. Its output is
located in the artifact by tensor name: the ONNX exporter names a node's output after the FX node (the model's
own output after the IO spec), and ONNX Runtime and OpenVINO keep those names. The target that runs the artifact's
runtime returns those tensors as extra outputs (``Target.layer_outputs``, found by runtime name through
``targets.base.layer_probes``: ONNX Runtime's in ``targets/onnxrt.py``, OpenVINO's in ``targets/openvino.py``), on
a few validation samples, and each is compared, as SQNR in dB in execution order, with the same node's output in
the simulated program (did the runtime do what the encodings say?) and in the program with every
quantize/dequantize pair removed (FP32 with the same weights: how much the quantization itself costs up to here).

The first node whose SQNR against the simulation falls below ``threshold_db`` is where the artifact departs; when
none does, the artifact is faithful and the loss is the quantization itself: the node where the SQNR against
FP32 falls most is where it enters.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataSet
from ..metrics import sqnr_db
from ..quant.graph.quantize import quantized_op_nodes
from ..quant.pt2e import _dequantize_ops, _is, _quantize_ops, node_label
from ..targets.base import layer_probes

__all__ = ["THRESHOLD_DB", "divergence", "float_program", "node_outputs"]

THRESHOLD_DB = 30.0


def float_program(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of ``program`` with every quantize/dequantize pair removed: the same graph and weights in FP32."""
    out = copy.deepcopy(program)
    for node in list(out.graph.nodes):
        if _is(node, *_dequantize_ops(), *_quantize_ops()):
            node.replace_all_uses_with(node.args[0])
            out.graph.erase_node(node)
    out.graph.eliminate_dead_code()
    out.recompile()
    return out


class _Recorder(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, wanted: set[str]):
        super().__init__(gm)
        self.wanted, self.store, self.order = wanted, {}, []

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted and n.name not in self.store and isinstance(out, torch.Tensor):
            self.store[n.name] = out.detach().float().numpy().copy()
            self.order.append(n.name)
        return out


def node_outputs(
    program: torch.fx.GraphModule, wanted: set[str], names: list[str], data: DataSet
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Outputs of the nodes named ``wanted`` and the order in which they ran."""
    rec = _Recorder(program, wanted)
    with torch.inference_mode():
        rec.run(*[torch.from_numpy(np.ascontiguousarray(data.inputs[n])) for n in names])
    return rec.store, rec.order


def _tensor_name(node: torch.fx.Node, output_name: str) -> str:
    """The artifact's name for ``node``'s output: the node's own, or the IO spec's for the model output."""
    return output_name if any(u.op == "output" for u in node.users) else node.name


def divergence(
    artifact_dir: Path,
    meta: dict[str, Any],
    program: torch.fx.GraphModule,
    names: list[str],
    data: DataSet,
    threshold_db: float = THRESHOLD_DB,
) -> dict[str, Any]:
    """Per-node SQNR of the artifact vs the simulated program and its FP32 form, in execution order."""
    probe = layer_probes().get(meta["runtime"]).layer_outputs
    nodes = {n.name: n for n in quantized_op_nodes(program)}
    sim_out, order = node_outputs(program, set(nodes), names, data)
    fp_out, _ = node_outputs(float_program(program), set(nodes), names, data)
    tensors = {name: _tensor_name(node, meta.get("output", "")) for name, node in nodes.items()}
    got = probe(artifact_dir, meta, list(dict.fromkeys(tensors.values())), dict(data.inputs))
    rows = []
    for name in order:
        label, a = node_label(nodes[name]), got.get(tensors[name])
        s, f = sim_out[name], fp_out.get(name)
        if a is None or f is None:
            rows.append({"layer": label, "found": False})
            continue
        if a.shape != s.shape:
            rows.append({"layer": label, "found": False, "note": f"shape {list(a.shape)} vs {list(s.shape)}"})
            continue
        rows.append(
            {
                "layer": label,
                "found": True,
                "int8": True,
                "sqnr_vs_sim_db": _finite(sqnr_db(s, a)),
                "sqnr_vs_fp32_db": _finite(sqnr_db(f, a)),
                "sim_sqnr_vs_fp32_db": _finite(sqnr_db(f, s)),
            }
        )
    found = [r for r in rows if r["found"]]
    first = next((r["layer"] for r in found if r["sqnr_vs_sim_db"] < threshold_db), None)
    # where the quantization error enters: the largest fall of the simulated program's SQNR vs FP32 from one node to
    # the next in execution order (the first node falls from the best value seen: nothing came before it)
    sims = [r["sim_sqnr_vs_fp32_db"] for r in found]
    drops = [((sims[i - 1] if i else max(sims)) - v, r["layer"]) for i, (v, r) in enumerate(zip(sims, found))]
    worst = max(drops)[1] if drops else None
    return {
        "target": meta["target"],
        "precision": meta["precision"],
        "runtime": meta["runtime"],
        "unit": "graph node",
        "samples": len(data),
        "threshold_db": threshold_db,
        "layers": rows,
        "located": len(found),
        "first_departure": first,
        "largest_fp32_drop_at": worst,
        "verdict": _verdict(first, worst, threshold_db, len(found), len(rows)),
    }


def _finite(v: float) -> float:
    return 200.0 if not np.isfinite(v) else float(v)


def _verdict(first: str | None, worst: str | None, threshold: float, found: int, total: int) -> str:
    if not found:
        return "no quantized node could be located in the artifact's graph"
    if first:
        return f"the artifact first departs from the simulated program at '{first}' (SQNR < {threshold:.0f} dB)"
    return (
        f"the artifact follows the simulated program at every located node ({found} of {total}); the loss is the "
        f"quantization itself, entering mostly at '{worst}' (largest SQNR drop vs FP32)"
    )
