"""The op patterns edgekit's quantizer annotates: which aten ops, what kind, which arguments they multiply.

Pure data over torch (no torchao import), read by the annotation pass, the ignore list, the report's coverage count
and the per-node divergence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

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
    # elementwise: quantized by the profiles that name them (full_integer_16x8)
    aten.sub.Tensor: OpPattern("sub", (0, 1), _first),
    aten.mul.Tensor: OpPattern("mul", (0, 1), _first),
    aten.mean.dim: OpPattern("mean", (0,), _first),
    aten.rsqrt.default: OpPattern("rsqrt", (0,), _first),
    aten.sigmoid.default: OpPattern("sigmoid", (0,), _first),
}
# kinds whose constant operand is a value on the activations' grid (a LayerNorm's gamma), not a matmul weight
ELEMENTWISE = frozenset({"add", "sub", "mul"})


# activations a runtime fuses into the integer kernel before it (conv/linear + ReLU/ReLU6 -> one QLinearConv):
# the output Q/DQ goes after them, so nothing runs in float between the kernel and its requantization
FUSED_ACTIVATIONS = frozenset({aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.clamp.default})


def fused_activation(node: torch.fx.Node) -> torch.fx.Node | None:
    """The activation that is ``node``'s only reader, when a runtime fuses it into ``node``'s kernel."""
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_function" and users[0].target in FUSED_ACTIVATIONS:
        return users[0]
    return None
