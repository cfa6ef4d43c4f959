"""PyTorch -> ONNX export (opset 18), shared by every ONNX-based target, and the Q/DQ finalization.

The simulated-quantized model exports with QuantizeLinear/DequantizeLinear around every quantized layer.
``finalize_qdq`` then stores weights as int8 initializers (Q folded away) and folds the weight Transpose
that the exporter inserts for MatMul, so the graph has the canonical ``DQ(int8 W) -> MatMul`` pattern that
ONNX Runtime, OpenVINO and TensorRT fuse into integer kernels.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ..archs.base import ModelBundle
from ..errors import UnsupportedOpError
from ..nn.capture import module_stack

EXPORT_BATCH, EXPORT_SEQUENCE = 2, 16


def export_onnx(module: torch.nn.Module, bundle: ModelBundle, path: Path, opset: int = 18) -> onnx.ModelProto:
    """Export with the TorchScript exporter (it lowers fake-quant ops to Q/DQ); weights stay in one file.

    A copy is traced: some HF models change their own state while traced (Swin stores its window size as a
    traced tensor), which would break a later torch.export of the same module (the tflite target)."""
    module = copy.deepcopy(module)
    args = bundle.example_inputs(EXPORT_BATCH, EXPORT_SEQUENCE)
    dynamic = {s.name: s.dynamic_axes for s in bundle.inputs if s.dynamic_axes}
    dynamic[bundle.output_name] = {0: "batch"}
    buf, log = io.BytesIO(), io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            torch.no_grad(),
            contextlib.redirect_stderr(log),
            contextlib.redirect_stdout(log),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=[s.name for s in bundle.inputs],
                output_names=[bundle.output_name],
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    except Exception as exc:
        raise unsupported_op_error(exc, "onnx", locate=lambda op: find_op_module(module, args, op)) from None
    model = onnx.load_from_string(buf.getvalue())
    model = finalize_qdq(model)
    onnx.save(model, str(path))
    return model


_OP_PATTERNS = [
    re.compile(r"Exporting the operator '?([\w:.]+)'? to ONNX opset version \d+ is not supported"),
    re.compile(r"Unsupported: ONNX export of operator ([\w:.]+)"),
    re.compile(r"unsupported operator '?([\w:.]+)'?", re.I),
]


def find_op_module(module: torch.nn.Module, args: tuple[torch.Tensor, ...], op: str) -> str | None:
    """Re-run the model and return the name of the innermost module that calls aten op ``op``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    wanted = op.split("::")[-1]
    stack: list[str] = [""]
    found: list[str] = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):  # type: ignore[override]
            if not found and func.__name__.split(".")[0] == wanted:
                found.append(stack[-1])
            return func(*a, **(kw or {}))

    with module_stack(module.named_modules(), stack):
        try:
            with torch.no_grad(), Spy():
                module(*args)
        except Exception:
            return None
    if not found:
        return None
    return found[0] or f"{type(module).__name__} (top-level forward)"


def unsupported_op_error(exc: Exception, target: str, locate=None) -> UnsupportedOpError:
    """Turn an exporter failure into one line naming the op and the module (node) that calls it."""
    text = str(exc)
    op = next((m.group(1) for p in _OP_PATTERNS if (m := p.search(text))), None)
    if op:
        node = locate(op) if locate else None
        where = f" at node '{node}'" if node else ""
        return UnsupportedOpError(
            f"{target}: operator '{op}'{where} cannot be converted to ONNX opset 18; "
            "replace it in the model, add a transform that rewrites it, or exclude this target"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return UnsupportedOpError(f"{target}: export failed: {first}")


def constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def int_attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def finalize_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold Q(weight) into int8 initializers and Transpose(DQ(w)) into a transposed int8 weight."""
    graph = model.graph
    consts = constants(model)
    inits = {i.name for i in graph.initializer}
    users = _consumers(model)
    remove: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        w_name, s_name, z_name = q.input[0], q.input[1], q.input[2]
        if w_name not in inits or s_name not in consts or z_name not in consts:
            continue  # an activation Q: stays
        dqs = users.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        w, scale, zp = consts[w_name], consts[s_name].astype(np.float32), consts[z_name]
        axis = int_attr(q, "axis", 1)
        if scale.ndim == 1 and scale.size > 1:
            shape = [1] * w.ndim
            shape[axis] = -1
            scale_b, zp_b = scale.reshape(shape), zp.reshape(shape).astype(np.float32)
        else:
            scale_b, zp_b = scale, zp.astype(np.float32)
        info = np.iinfo(zp.dtype)
        qw = np.clip(np.rint(w / scale_b) + zp_b, info.min, info.max).astype(zp.dtype)
        dq_axis = axis
        dq = dqs[0]
        after = users.get(dq.output[0], [])
        if len(dqs) == 1 and len(after) == 1 and after[0].op_type == "Transpose" and qw.ndim == 2:
            tr = after[0]
            perm = list(next((a.ints for a in tr.attribute if a.name == "perm"), [1, 0]))
            qw = np.ascontiguousarray(qw.transpose(perm))
            dq_axis = perm.index(axis)
            for n in users.get(tr.output[0], []):
                n.input[:] = [dq.output[0] if i == tr.output[0] else i for i in n.input]
            for o in graph.output:
                if o.name == tr.output[0]:
                    o.name = dq.output[0]
            remove.append(tr)
        q_name = f"{w_name}_quantized"
        new_inits.append(numpy_helper.from_array(qw, q_name))
        for d in dqs:
            d.input[0] = q_name
            if zp.dtype == np.int8 and not zp.any():
                # a symmetric weight: no zero-point input (ONNX's default is 0 of the int8 type). OpenVINO turns
                # an explicit per-channel zero point into a Subtract on the weights, and its CPU plugin then runs
                # the FullyConnected in bf16/f32 instead of int8
                del d.input[2:]
            if scale.size > 1:
                kept = [a for a in d.attribute if a.name != "axis"]
                del d.attribute[:]
                d.attribute.extend([*kept, helper.make_attribute("axis", dq_axis)])
        remove.append(q)
    for node in remove:
        graph.node.remove(node)
    graph.initializer.extend(new_inits)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model


def weights_to_fp16(model: onnx.ModelProto, min_elements: int = 16) -> onnx.ModelProto:
    """Store float32 weights as float16 with a Cast back to float32 (fp16 storage, fp32 compute).

    ONNX Runtime's CPU provider lacks fp16 kernels for most ops; this keeps the graph runnable everywhere
    while halving the weight size. The report says "fp16 weights, fp32 compute" for this artifact.
    """
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), f"{name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT, name=f"{name}_cast"))
    nodes = casts + list(graph.node)  # Casts of initializers go first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def activations_as_uint8(model: onnx.ModelProto) -> int:
    """Rewrite symmetric int8 activation Q/DQ (zero point 0) as uint8 with zero point 128, in place.

    The two grids hold exactly the same values (q_u8 = q_s8 + 128), but ONNX Runtime's x86 kernels are fast
    for uint8 activations x int8 weights and slow for int8 x int8. Weights (int8 initializers) are untouched.
    Returns the number of rewritten nodes.
    """
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    consts = constants(model)
    rewritten: dict[str, str] = {}
    count = 0
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            continue  # a weight
        zp = consts.get(node.input[2])
        if zp is None or zp.dtype != np.int8 or zp.size != 1 or int(zp.ravel()[0]) != 0:
            continue
        name = rewritten.get(node.input[2])
        if name is None:
            name = f"{node.input[2]}_as_uint8"
            graph.initializer.append(numpy_helper.from_array(np.array(128, dtype=np.uint8), name))
            rewritten[node.input[2]] = name
        node.input[2] = name
        count += 1
    return count
