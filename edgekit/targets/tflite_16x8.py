"""A fix-up of litert-torch's 16x8 flatbuffers: int64 biases for int16 convolutions.

LiteRT's int16 ``CONV_2D`` and ``DEPTHWISE_CONV_2D`` take an int64 bias (the depthwise kernel refuses anything
else at load: "depthwise_conv.cc bias->type != kTfLiteInt64"; ``CONV_2D`` reads an int32 one as garbage: a tiny
ViT's patch embedding came out at cosine 0.82 vs its simulated program), while litert-torch 0.10 writes the int32
bias of the int8 kernels. The bias keeps its values and scale (input scale x weight scale); only its storage
widens. ``FULLY_CONNECTED`` takes either, so it is left alone.
"""

from __future__ import annotations

import numpy as np

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def widen_conv_biases(flat: bytes) -> tuple[bytes, int]:
    """(the model with the int32 biases of int16-input convolutions stored as int64, how many were widened)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(flat, 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode)) for c in model.operatorCodes]
    convs = {i for i, name in enumerate(codes) if name in _CONVS}
    widened = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex not in convs or len(op.inputs) < 3 or op.inputs[2] < 0:
                continue
            x, bias = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]]
            data = model.buffers[bias.buffer].data
            if x.type != fb.TensorType.INT16 or bias.type != fb.TensorType.INT32 or data is None:
                continue
            wide = np.frombuffer(np.asarray(data, np.uint8).tobytes(), "<i4").astype("<i8")
            model.buffers[bias.buffer].data = np.frombuffer(wide.tobytes(), np.uint8)
            bias.type = fb.TensorType.INT64
            widened += 1
    if not widened:
        return flat, 0
    import flatbuffers

    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), widened
