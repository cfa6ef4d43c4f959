"""TensorRT's explicit-quantization rules, checked on an ONNX graph (structure only, no TensorRT needed).

1. int8 Q/DQ only, symmetric: every zero point is int8 and 0.
2. Weights: per-channel along the consumer's output-channel axis (Conv: 0; MatMul B[K, N]: 1; Gemm: 0 when
   transB=1 else 1), stored as int8 initializers feeding a DequantizeLinear.
3. Activations: per-tensor (one scale).
4. Every MatMul/Gemm/Conv with a quantized weight also has a DequantizeLinear on its activation input.
5. Scales are positive and finite.
"""

from __future__ import annotations

import numpy as np
import onnx

from .onnx_export import constants, int_attr


def _output_axis(consumer: onnx.NodeProto) -> int:
    if consumer.op_type == "Conv":
        return 0
    if consumer.op_type == "Gemm":
        return 0 if int_attr(consumer, "transB", 0) else 1
    return 1  # MatMul: B is [K, N]


def check_tensorrt_qdq(model: onnx.ModelProto) -> list[str]:
    """Return the rule violations (empty when the graph follows TensorRT's Q/DQ rules)."""
    vals = constants(model)
    inits = {i.name for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    problems: list[str] = []
    weight_dq: set[str] = set()
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = vals.get(n.input[1])
        zp = vals.get(n.input[2]) if len(n.input) > 2 else None
        if len(n.input) < 3 and n.op_type == "DequantizeLinear" and n.input[0] in vals:
            zp = np.zeros(1, vals[n.input[0]].dtype)  # no zero-point input: 0 of the int8 weight's own type
        if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
            problems.append(
                f"{n.name}: zero point must be int8 and 0 (symmetric), got "
                f"{None if zp is None else (zp.dtype, zp.ravel()[:3].tolist())}"
            )
        if scale is None or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            problems.append(f"{n.name}: scale must be a positive finite constant")
        is_weight = n.op_type == "DequantizeLinear" and n.input[0] in inits
        if is_weight:
            weight_dq.add(n.output[0])
        elif scale is not None and scale.size != 1:
            problems.append(f"{n.name}: activation quantization must be per-tensor (scale has {scale.size} values)")
    for n in model.graph.node:
        if n.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        w_in = [i for i in n.input[:2] if i in weight_dq]
        if not w_in:
            continue
        dq = producers[w_in[0]]
        scale = vals[dq.input[1]]
        w = vals[dq.input[0]]
        if scale.size > 1:
            axis = int_attr(dq, "axis", 1) % w.ndim
            if axis != _output_axis(n) or scale.size != w.shape[axis]:
                problems.append(
                    f"{n.name}: weight per-channel axis {axis} is not the output-channel axis {_output_axis(n)}"
                )
        act = n.input[0] if n.input[1] == w_in[0] else n.input[1]
        if getattr(producers.get(act), "op_type", None) != "DequantizeLinear":
            problems.append(f"{n.name}: quantized weight but no DequantizeLinear on the activation input")
    return problems
