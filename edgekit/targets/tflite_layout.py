"""Teach litert-torch's NCHW -> NHWC layout pass that a constant (zero) pad is layout-free.

litert-torch converts an NCHW program by marking the ops that can run NHWC and rewriting their arguments; an op
without a rewriter is a layout barrier that gets a TRANSPOSE on each side. ``constant_pad_nd`` has none. In a
float model the TFLite optimizer later folds the transposes and the pad into the convolution, but between
quantize/dequantize pairs it cannot: EfficientNet's TF-style "same" padding (22 explicit pads) became 43 int8
TRANSPOSEs around 22 PADs, which made the full-integer model no faster than FP32.

A constant pad only moves its pad widths from NCHW to NHWC order, so the rewriter is exact. It is registered
through litert-torch's own registry (the same one its mirror-pad rewrite uses), once per process, before a
conversion; when that registry is not where this litert-torch keeps it, conversion proceeds as before (slower).
"""

from __future__ import annotations

import torch

aten = torch.ops.aten
_registered = False

# torch's pad list runs from the last dim backwards: (W, H, C, N) for NCHW; NHWC's last dims are (C, W, H, N)
_NCHW_TO_NHWC_ORDER = (2, 0, 1, 3)


def nhwc_pad(pad: list[int]) -> list[int]:
    """The pad list of an NCHW 4-D ``constant_pad_nd`` for the same tensor stored NHWC."""
    pairs = [list(pad[i : i + 2]) for i in range(0, len(pad), 2)] + [[0, 0]] * (4 - len(pad) // 2)
    return [w for dim in _NCHW_TO_NHWC_ORDER for w in pairs[dim]]


def _rewrite_constant_pad(node: torch.fx.Node) -> None:
    x, pad, *rest = node.args
    node.args = (x, nhwc_pad(list(pad)), *rest)


def register_pad_layout() -> bool:
    """Register the constant-pad NHWC rewriter with litert-torch; returns whether it is registered."""
    global _registered
    if _registered:
        return True
    try:
        from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_rewrite
    except ImportError:
        return False
    layout_rewrite.rewriters.setdefault(aten.constant_pad_nd.default, _rewrite_constant_pad)
    _registered = True
    return True


_NOT_KERNELS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def kernel_precision(flat: bytes) -> tuple[int, dict[str, int]]:
    """(integer kernels, float kernels by op) of a .tflite: a kernel is float when any of its tensors is.

    The artifact note states this instead of assuming it: LiteRT makes a layer integer only where its inputs and
    output are quantized, and the converter decides that, not the recipe."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flat)
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    integer, floating = 0, {}
    for op in it._get_ops_details():
        if op["op_name"] in _NOT_KERNELS:
            continue
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(dtypes[i].__name__.startswith("float") for i in tensors):
            floating[op["op_name"]] = floating.get(op["op_name"], 0) + 1
        else:
            integer += 1
    return integer, floating


def kernel_note(flat: bytes, source: str) -> str:
    try:
        integer, floating = kernel_precision(flat)
    except Exception:  # an interpreter without op details: say what was asked, not what was counted
        return f"int8 from {source} (LiteRT static mode; integer kernels not counted: no op details here)"
    total = integer + sum(floating.values())
    if not floating:
        return f"full-integer int8 from {source}: all {total} kernels integer (LiteRT static mode)"
    rest = ", ".join(f"{op} x{n}" for op, n in sorted(floating.items()))
    return f"int8 from {source}: {integer} of {total} kernels integer, float: {rest} (LiteRT static mode)"
