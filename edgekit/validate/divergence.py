"""Per-layer divergence: where does a compiled artifact's output first depart from the simulated model?

Every quantized layer of the simulated model (a ``QuantWrapper``, named after the module it wraps) is located in
the runtime's graph by its module scope (the exporter names each node ``/hf/vit/layers.0/attention/q_proj/...``);
the layer's output is the tensor that leaves that scope. The runtime is asked for those tensors as extra outputs
(ONNX Runtime: extra graph outputs; OpenVINO: ``Model.add_outputs``), run on a few validation samples, and each is
compared with the same layer's output in the simulated model (did the runtime do what the encodings say?) and in
the FP32 model (how much the quantization itself costs up to here), as SQNR in dB, in execution order.

The first layer whose SQNR against the simulation falls below ``threshold_db`` is where the artifact departs; when
none does, the artifact is faithful and the loss is the quantization itself: the layer where the SQNR against
FP32 falls most is where it enters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataSet
from ..metrics import sqnr_db
from ..registry import Registry

THRESHOLD_DB = 30.0


@dataclass(frozen=True)
class Node:
    name: str
    inputs: tuple[Any, ...]  # tensor ids
    outputs: tuple[Any, ...]


def scope_of(node_name: str) -> str:
    """``/features/features.0/branches.0/conv/Conv`` -> ``features.0.branches.0.conv`` (a module name).

    The exporter writes one path segment per *called* module; a container's child is ``container.index``, so a
    called ``nn.Sequential`` shows as ``features/features.0`` and an uncalled ``nn.ModuleList`` as ``layers.0``."""
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def layer_exits(nodes: list[Node], layers: Iterable[str], graph_outputs: set[Any]) -> dict[str, Any]:
    """For each layer (module name), the tensor id that leaves its scope (last in graph order), if found."""
    scopes = [scope_of(n.name) for n in nodes]
    consumers: dict[Any, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            consumers.setdefault(t, []).append(i)
    exits: dict[str, Any] = {}
    for layer in layers:
        inside = {i for i, s in enumerate(scopes) if s == layer or s.startswith(layer + ".")}
        found = None
        for i in sorted(inside):
            if not nodes[i].inputs:
                continue  # a constant: not the layer's output even if something outside reads it
            for t in nodes[i].outputs:
                users = consumers.get(t, [])
                if t in graph_outputs or any(u not in inside for u in users):
                    found = t
        if found is not None:
            exits[layer] = found
    return exits


# A runtime probe: (artifact dir, artifact meta, layer names, feeds) -> {layer: (output array, pre_bias)}; pre_bias:
# the runtime moved the layer's bias addition out of its scope (OpenVINO does), so the tensor lacks the bias.
Probe = Callable[[Path, dict[str, Any], list[str], dict[str, np.ndarray]], dict[str, tuple[np.ndarray, bool]]]
BIASLESS_OPS = {"MatMul", "Convolution", "GroupConvolution"}  # OpenVINO ops that never carry a bias
PROBES: Registry[Probe] = Registry("runtime with intermediate outputs")


@PROBES.register("onnxruntime")
def onnxruntime_layers(
    path: Path, meta: dict[str, Any], layers: list[str], feeds: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, bool]]:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path / meta["file"]))
    g = model.graph
    nodes = [Node(n.name, tuple(n.input), tuple(n.output)) for n in g.node]
    exits = layer_exits(nodes, layers, {o.name for o in g.output})
    have = {o.name for o in g.output}
    for t in dict.fromkeys(exits.values()):
        if t not in have:
            g.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    declared = {i.name: i.type for i in sess.get_inputs()}
    feed = {k: v.astype(np.int32) if declared.get(k) == "tensor(int32)" else v for k, v in feeds.items()}
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(names, feed)))
    return {layer: (np.asarray(values[t], dtype=np.float32), False) for layer, t in exits.items()}


@PROBES.register("openvino")
def openvino_layers(
    path: Path, meta: dict[str, Any], layers: list[str], feeds: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, bool]]:
    """All layer outputs from one compiled model with extra outputs; if those change the model's own output (the
    CPU plugin compiles a probed graph differently, e.g. a bias-less int8 conv made a result), one compile per
    layer instead, each checked the same way."""
    import openvino as ov

    core = ov.Core()
    hint = (meta.get("options") or {}).get("inference_precision", "f32")
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2}
    model = core.read_model(str(path / meta["file"]))
    base = np.asarray(core.compile_model(model, "CPU", config)(feeds)[0], dtype=np.float32)
    ops = list(model.get_ordered_ops())
    nodes = []
    for op in ops:
        sources = [x.get_source_output() for x in op.inputs()]
        nodes.append(
            Node(
                op.get_friendly_name(),
                tuple((src.get_node().get_friendly_name(), src.get_index()) for src in sources),
                tuple((op.get_friendly_name(), i) for i in range(op.get_output_size())),
            )
        )
    graph_out = {(r.input(0).get_source_output().get_node().get_friendly_name(), 0) for r in model.get_results()}
    exits = layer_exits(nodes, layers, graph_out)
    kinds = {(op.get_friendly_name(), i): op.get_type_name() for op in ops for i in range(op.get_output_size())}

    def probe(wanted: list[Any]) -> dict[Any, np.ndarray] | None:
        m = core.read_model(str(path / meta["file"]))
        by_name = {
            (op.get_friendly_name(), i): op.output(i) for op in m.get_ordered_ops() for i in range(op.get_output_size())
        }
        names = []
        for k, t in enumerate(wanted):  # a unique tensor name per probe, to find it in the compiled model
            by_name[t].get_tensor().add_names({f"edgekit_probe_{k}"})
            names.append(f"edgekit_probe_{k}")
        m.add_outputs(names)
        compiled = core.compile_model(m, "CPU", config)
        result = compiled(feeds)
        if not np.allclose(np.asarray(result[0], dtype=np.float32), base, rtol=1e-4, atol=1e-5):
            return None
        return {t: np.asarray(result[compiled.output(n)], dtype=np.float32) for t, n in zip(wanted, names)}

    wanted = list(dict.fromkeys(exits.values()))
    values = probe(wanted)
    if values is None:
        values = {}
        for t in wanted:
            one = probe([t])
            if one is not None:
                values.update(one)
    return {layer: (values[t], kinds[t] in BIASLESS_OPS) for layer, t in exits.items() if t in values}


def torch_layer_outputs(
    model: torch.nn.Module, layers: list[str], names: list[str], data: DataSet
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Outputs of the modules named ``layers`` (first call each) and the order in which they ran."""
    store: dict[str, np.ndarray] = {}
    order: list[str] = []
    hooks = []
    for layer in layers:
        module = model.get_submodule(layer)

        def hook(_m, _i, out, layer=layer):
            if layer not in store:
                store[layer] = out.detach().float().numpy().copy()
                order.append(layer)

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(*[torch.from_numpy(data.inputs[n]) for n in names])
    finally:
        for h in hooks:
            h.remove()
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

    probe = PROBES.get(meta["runtime"])
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
