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
