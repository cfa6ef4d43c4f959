"""The INT8 program a target lowers: a quantized PT2E program (``convert_pt2e`` output), whoever quantized it
(edgekit's quantizer, one program per profile, or Neural Compressor). Every target reaches it through the
functions here, so a target has one INT8 path:

* :func:`qdq_onnx_export`: the Q/DQ ONNX that onnx, openvino (and tensorrt) read. A PT2E program is re-exported
  with ``torch.export`` and converted by the dynamo ONNX exporter, which turns quantized_decomposed ops into
  QuantizeLinear/DequantizeLinear; weight Q is then folded into int8 initializers like edgekit's own.
* :func:`pt2e_form`: the program LiteRT and ExecuTorch convert. uint8 activations (x86 quantizers) become the
  equivalent int8 grid, which LiteRT's integer kernels need.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import onnx
import torch

from ..archs.base import ModelBundle
from .onnx_export import EXPORT_BATCH, EXPORT_SEQUENCE, finalize_qdq, unsupported_op_error


def source(quant) -> str:
    """Who made the INT8 program, for artifact notes: "edgekit's quantizer (PT2E program)" or "neural-compressor's
    PT2E program"."""
    if quant.quantizer.value == "edgekit":
        return "edgekit's quantizer (PT2E program)"
    return f"{quant.quantizer.value}'s PT2E program"


def qdq_onnx_export(program: torch.fx.GraphModule, bundle: ModelBundle, path: Path, opset: int) -> onnx.ModelProto:
    """The program as Q/DQ ONNX: re-exported with ``torch.export`` and converted by the dynamo exporter."""
    from ..quant.graph.capture import dynamic_shapes

    args = bundle.example_inputs(EXPORT_BATCH, EXPORT_SEQUENCE)
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            exported = torch.export.export(program, args, dynamic_shapes=dynamic_shapes(bundle, len(args)))
            onnx_program = torch.onnx.export(
                exported,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=[s.name for s in bundle.inputs],
            )
    except Exception as exc:
        raise unsupported_op_error(exc, "onnx") from None
    model = onnx_program.model_proto
    name_output(model, bundle.output_name)
    drop_full_range_clips(model)
    fold_constant_casts(model)
    model = finalize_qdq(model)
    gemm_as_matmul(model)
    del model.graph.value_info[:]  # the exporter's shapes of weight DQ outputs are stale once weights are transposed
    for node in model.graph.node:
        # the exporter's per-node provenance (stack traces with this machine's paths, FX node text): twice the size
        # of a small model's weights, and not the deployment's business
        del node.metadata_props[:]
    onnx.save(model, str(path))
    return model


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for value in [*model.graph.output, *model.graph.value_info, *model.graph.initializer]:
        if value.name == old:
            value.name = new


def name_output(model: onnx.ModelProto, name: str) -> None:
    """Give the graph output the IO spec's name. The dynamo exporter's ``output_names`` does not check for
    an internal value of that name (MiniLM's ``embedding`` lookup), which makes an invalid model."""
    current = model.graph.output[0].name
    if current == name:
        return
    if any(name in n.output for n in model.graph.node) or any(i.name == name for i in model.graph.initializer):
        _rename(model, name, f"{name}__internal")
    _rename(model, current, name)


def drop_full_range_clips(model: onnx.ModelProto) -> int:
    """Remove ``Clip`` between QuantizeLinear and DequantizeLinear when it clips to the full int8/uint8 range.

    The dynamo exporter writes quantized_decomposed's (quant_min, quant_max) as a Clip on the quantized tensor;
    at the dtype's own range it is a no-op, and without it weight Q/DQ fold into int8 initializers."""
    import numpy as np

    from .onnx_export import constants

    consts = constants(model)
    inits = {i.name for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    full = {(-128, 127), (0, 255)}
    dropped = []
    for node in model.graph.node:
        if node.op_type != "Clip" or len(node.input) != 3:
            continue
        src = producers.get(node.input[0])
        lo, hi = consts.get(node.input[1]), consts.get(node.input[2])
        if src is None or src.op_type != "QuantizeLinear" or lo is None or hi is None:
            continue
        bounds = (int(np.asarray(lo).ravel()[0]), int(np.asarray(hi).ravel()[0]))
        # [-127, 127] on a weight: its symmetric scale is amax / 127, so no quantized value leaves the range
        if bounds not in full and not (bounds == (-127, 127) and src.input[0] in inits):
            continue
        for other in model.graph.node:
            other.input[:] = [node.input[0] if i == node.output[0] else i for i in other.input]
        dropped.append(node)
    for node in dropped:
        model.graph.node.remove(node)
    return len(dropped)


def fold_constant_casts(model: onnx.ModelProto) -> int:
    """Replace ``Cast`` of a constant by the cast constant; returns the count.

    The dynamo exporter constant-folds small tensors only: a per-channel zero point with one entry per row of a
    large table (MiniLM's 30522-word embedding) stays ``Cast(int64 -> int8)``, so its weight Q is not folded
    into an int8 initializer and ONNX Runtime re-quantizes the float table on every run."""
    from onnx import helper, numpy_helper

    from .onnx_export import constants

    consts = constants(model)
    folded = []
    for node in model.graph.node:
        if node.op_type != "Cast" or node.input[0] not in consts:
            continue
        to = next(a.i for a in node.attribute if a.name == "to")
        value = consts[node.input[0]].astype(helper.tensor_dtype_to_np_dtype(to))
        model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    return len(folded)


def gemm_as_matmul(model: onnx.ModelProto) -> int:
    """Rewrite ``Gemm(DQ(x), DQ(int8 W), bias)`` with a float output as ``MatMul`` (+ ``Add``); returns the count.

    The dynamo exporter writes a linear on a 2-D input (a decoder's flattened FFN, an LM head, a classifier) as
    Gemm. ONNX Runtime fuses ``DQ -> MatMul`` into an integer matmul (MatMulIntegerToFloat) but runs ``DQ -> Gemm``
    as a float Gemm after dequantizing the whole weight on every call: OPT's 30522x128 LM head made its INT8 model
    slower than FP32. A ``Gemm(transB=1)`` weight is stored transposed ([K, N]), its per-channel axis then 1."""
    import numpy as np
    from onnx import helper, numpy_helper

    from .onnx_export import _consumers, int_attr

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    users = _consumers(model)
    inits = {i.name: i for i in graph.initializer}
    done = 0
    for gemm in [n for n in graph.node if n.op_type == "Gemm"]:
        attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            continue
        x_dq, w_dq = producers.get(gemm.input[0]), producers.get(gemm.input[1])
        if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        weight = inits.get(w_dq.input[0])
        if weight is None or len(weight.dims) != 2 or len(users.get(w_dq.output[0], [])) != 1:
            continue
        if any(u.op_type == "QuantizeLinear" for u in users.get(gemm.output[0], [])):
            continue  # DQ -> Gemm -> Q is ONNX Runtime's QGemm already
        if attrs.get("transB", 0):
            transposed = np.ascontiguousarray(numpy_helper.to_array(weight).T)
            if len(users.get(weight.name, [])) == 1:  # in place: the initializer keeps its name
                weight.CopyFrom(numpy_helper.from_array(transposed, weight.name))
            else:
                graph.initializer.append(numpy_helper.from_array(transposed, f"{weight.name}_kn"))
                w_dq.input[0] = f"{weight.name}_kn"
            axis = int_attr(w_dq, "axis", 1)  # meaningful only for a per-channel scale; harmless otherwise
            for a in list(w_dq.attribute):
                if a.name == "axis":
                    w_dq.attribute.remove(a)
            w_dq.attribute.append(helper.make_attribute("axis", 1 - axis))
        index = list(graph.node).index(gemm)
        has_bias = len(gemm.input) > 2 and gemm.input[2]
        product = f"{gemm.output[0]}_matmul" if has_bias else gemm.output[0]
        new = [helper.make_node("MatMul", [gemm.input[0], gemm.input[1]], [product], name=f"{gemm.name}_matmul")]
        if has_bias:
            new.append(helper.make_node("Add", [product, gemm.input[2]], [gemm.output[0]], name=f"{gemm.name}_bias"))
        graph.node.remove(gemm)
        for offset, node in enumerate(new):
            graph.node.insert(index + offset, node)
        done += 1
    return done


def pt2e_form(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of the program in the form LiteRT and ExecuTorch convert: uint8 activations (x86 grids) as int8, and
    no splat bias (:func:`unsplat_biases`)."""
    from ..quant.pt2e import activations_as_int8

    out = copy.deepcopy(program)
    activations_as_int8(out)
    unsplat_biases(out)
    return out


_BIAS_ARG = {
    torch.ops.aten.linear.default: 2,
    torch.ops.aten.conv1d.default: 2,
    torch.ops.aten.conv2d.default: 2,
    torch.ops.aten.conv3d.default: 2,
    torch.ops.aten.addmm.default: 0,
}


def unsplat_biases(gm: torch.fx.GraphModule) -> int:
    """Make each non-zero bias whose elements are all equal (HF Hiera's init: 0.02 everywhere) not quite uniform;
    returns the count.

    LiteRT's converter holds such a bias as one splat value and quantizes it to int32 with the first output
    channel's scale only, so with per-channel weights every other channel gets a wrong bias (a linear with bias 0.5
    everywhere: max error 0.60 on outputs of 0.72 vs the program, 0.0014 without the splat; hiera int8 cosine 0.87).
    One float32 ulp on one element keeps the constant non-splat."""
    from ..quant.graph.params import replace_tensor, tensor_of

    count = 0
    for node in gm.graph.nodes:
        pos = _BIAS_ARG.get(node.target) if node.op == "call_function" else None
        bias = tensor_of(gm, node.args[pos]) if pos is not None and len(node.args) > pos else None
        if bias is None or bias.numel() < 2:
            continue
        flat = bias.detach().reshape(-1)
        if bool((flat == flat[0]).all()) and bool(flat[0] != 0):
            nudged = flat.clone()
            nudged[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=flat.dtype))
            replace_tensor(gm, node.args[pos], nudged.reshape(bias.shape))
            count += 1
    return count


def weights_folded(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of a PT2E program in int8 activations whose weight quantize ops are folded into int8 constants
    (``DQ(int8 W)``), the pattern XNNPACK's kernels and coremltools' constexpr weights take."""
    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

    out = pt2e_form(program)
    constant_fold(out, _quant_node_constraint)
    return out
