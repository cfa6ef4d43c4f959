"""Bias correction after ``convert_pt2e`` (``quantization.bias_correction``).

Rounding a layer's weights shifts the mean of its output: E[x·W_q] != E[x·W]. For every quantized linear / addmm /
conv with a bias, one pass of the calibration data through the converted program measures, per output channel, the
mean of x·(W - W_q) over the layer's actual (quantized-path) input x, and adds it to the bias, so the expected
output error of the layer is zero on the calibration data. Depthwise convolutions, with 9 weights per channel,
are where it matters most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..pt2e import _dequantize_ops, _is, _quantize_ops
from .params import replace_tensor, tensor_of

aten = torch.ops.aten


@dataclass(frozen=True)
class Layer:
    weight: int  # argument positions
    bias: int
    channel_axis: int  # of the output; -1: last
    delta: Callable  # (node args with the weight replaced by W - W_q, and no bias) -> output shift


LAYERS: dict[object, Layer] = {
    aten.linear.default: Layer(1, 2, -1, lambda a: torch.nn.functional.linear(a[0], a[1])),
    aten.addmm.default: Layer(2, 0, -1, lambda a: a[1] @ a[2]),
    aten.conv1d.default: Layer(1, 2, 1, lambda a: _conv_nd(torch.nn.functional.conv1d, a)),
    aten.conv2d.default: Layer(1, 2, 1, lambda a: _conv_nd(torch.nn.functional.conv2d, a)),
    aten.conv3d.default: Layer(1, 2, 1, lambda a: _conv_nd(torch.nn.functional.conv3d, a)),
}


def _conv_nd(fn, a):
    rest = list(a[3:7])  # stride, padding, dilation, groups (defaults where the graph leaves them out)
    defaults = [1, 0, 1, 1]
    return fn(a[0], a[1], None, *(rest + defaults[len(rest) :]))


def _float_weight(w_dq: torch.fx.Node) -> torch.fx.Node | None:
    """dequantize(quantize(get_attr)) -> the get_attr holding the float weight."""
    if not _is(w_dq, *_dequantize_ops()):
        return None
    q = w_dq.args[0]
    if not isinstance(q, torch.fx.Node) or not _is(q, *_quantize_ops()):
        return None
    src = q.args[0]
    return src if isinstance(src, torch.fx.Node) and src.op == "get_attr" else None


def _targets(gm: torch.fx.GraphModule) -> dict[torch.fx.Node, tuple[Layer, torch.fx.Node]]:
    out = {}
    for node in gm.graph.nodes:
        layer = LAYERS.get(node.target) if node.op == "call_function" else None
        if layer is None or len(node.args) <= max(layer.weight, layer.bias):
            continue
        w, b = node.args[layer.weight], node.args[layer.bias]
        if isinstance(w, torch.fx.Node) and _float_weight(w) is not None and tensor_of(gm, b) is not None:
            out[node] = (layer, b)
    return out


class _Shift(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, targets: dict):
        super().__init__(gm)
        self.targets = targets
        self.sums: dict[torch.fx.Node, torch.Tensor] = {}
        self.counts: dict[torch.fx.Node, int] = {}

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        entry = self.targets.get(n)
        if entry is not None:
            layer, _ = entry
            args, _ = self.fetch_args_kwargs_from_env(n)
            w_dq = args[layer.weight]
            w = tensor_of(self.module, _float_weight(n.args[layer.weight]))
            args = list(args)
            args[layer.weight] = w.to(w_dq.dtype) - w_dq
            shift = layer.delta(args).float()
            axis = layer.channel_axis % shift.dim()
            rows = shift.movedim(axis, -1).reshape(-1, shift.shape[axis])
            self.sums[n] = self.sums.get(n, 0) + rows.sum(0)
            self.counts[n] = self.counts.get(n, 0) + rows.shape[0]
        return out


def correct_bias(gm: torch.fx.GraphModule, batches: Callable[[], Iterable[tuple[torch.Tensor, ...]]]) -> dict:
    """Add each quantized layer's mean output shift to its bias, in place; the report's info."""
    targets = _targets(gm)
    shift = _Shift(gm, targets)
    with torch.no_grad():
        for feeds in batches():
            shift.run(*feeds)
    worst, done = 0.0, 0
    for node, (_, bias) in targets.items():
        if node not in shift.sums:
            continue
        mean = shift.sums[node] / shift.counts[node]
        b = tensor_of(gm, bias)
        replace_tensor(gm, bias, b + mean.to(b.dtype).reshape(b.shape))
        worst = max(worst, float(mean.abs().max()))
        done += 1
    return {"layers": done, "max_shift": worst}
