"""The edgekit PT2E ``Quantizer``: annotates the captured graph by op pattern, under a :class:`Profile`.

Annotation looks at aten ops, not at Python classes, so every ``linear``, ``conv``, ``addmm`` (transformers'
GPT-2 ``Conv1D``), ``matmul``/``bmm`` (attention's Q·Kᵀ and P·V), ``embedding`` and ``add`` is covered whichever
module produced it: a ``Conv2d`` subclass that pads in its own ``forward`` is just a pad followed by ``conv2d``.
A graph input that is a parameter (``get_attr``) is a weight, quantized per channel along its output axis; every
other floating input is an activation, quantized per tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer

from ...recipe import QuantSpec
from .observers import activation_spec, weight_spec
from .profiles import INPUTS, OUTPUT, WEIGHTS, Profile

aten = torch.ops.aten


@dataclass(frozen=True)
class OpPattern:
    kind: str
    inputs: tuple[int, ...]  # argument positions of the tensors it multiplies (activations or weights)
    weight_axis: Callable[[int, int], int]  # (argument position, weight rank) -> output-channel axis


def _first(pos: int, rank: int) -> int:
    return 0


def _last(pos: int, rank: int) -> int:
    return max(rank - 1, 0)


OP_KINDS: dict[object, OpPattern] = {
    aten.linear.default: OpPattern("linear", (0, 1), _first),
    aten.conv1d.default: OpPattern("conv", (0, 1), _first),
    aten.conv2d.default: OpPattern("conv", (0, 1), _first),
    aten.conv3d.default: OpPattern("conv", (0, 1), _first),
    aten.addmm.default: OpPattern("addmm", (1, 2), _last),  # Conv1D: bias + x @ W, W is (in, out)
    aten.matmul.default: OpPattern("matmul", (0, 1), _last),
    aten.bmm.default: OpPattern("matmul", (0, 1), _last),
    aten.mm.default: OpPattern("matmul", (0, 1), _last),
    # fused attention: its Q·Kᵀ and P·V happen inside; Q, K and V are quantized on the way in
    aten.scaled_dot_product_attention.default: OpPattern("attention", (0, 1, 2), _first),
    aten.embedding.default: OpPattern("embedding", (0,), _first),  # the table; indices are integers
    aten.add.Tensor: OpPattern("add", (0, 1), _first),
}


def _floating(node: object) -> bool:
    if not isinstance(node, torch.fx.Node):
        return False
    val = node.meta.get("val")
    return isinstance(val, torch.Tensor) and val.dtype.is_floating_point


def _is_weight(node: torch.fx.Node) -> bool:
    return node.op == "get_attr"


class EdgekitQuantizer(Quantizer):
    """Per-channel symmetric int8 weights; per-tensor activations, asymmetric uint8 unless ``symmetric`` (int8)."""

    def __init__(self, q: QuantSpec, profile: Profile, symmetric: bool):
        super().__init__()
        self.q, self.profile = q, profile
        self.act = activation_spec(q, symmetric)

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in model.graph.nodes:
            pattern = OP_KINDS.get(node.target) if node.op == "call_function" else None
            if pattern is None:
                continue
            ann = self._annotation(node, pattern)
            if ann is not None:
                node.meta["quantization_annotation"] = ann
        return model

    def _annotation(self, node: torch.fx.Node, pattern: OpPattern) -> QuantizationAnnotation | None:
        qmap = {}
        for pos in pattern.inputs:
            arg = node.args[pos] if pos < len(node.args) else None
            if not _floating(arg) or arg in qmap:
                continue
            if _is_weight(arg):
                if self.profile.wants(pattern.kind, WEIGHTS):
                    qmap[arg] = weight_spec(self.q, pattern.weight_axis(pos, arg.meta["val"].dim()))
            elif self.profile.wants(pattern.kind, INPUTS):
                qmap[arg] = self.act
        out = self.act if self.profile.wants(pattern.kind, OUTPUT) and _floating(node) else None
        if not qmap and out is None:
            return None
        return QuantizationAnnotation(input_qspec_map=qmap, output_qspec=out, _annotated=True)

    def validate(self, model: torch.fx.GraphModule) -> None:
        return None
