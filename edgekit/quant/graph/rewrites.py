"""Graph rewrites a profile applies to its copy of the captured graph before annotation (``Profile.rewrites``).

They exist for LiteRT's 16x8 mode (``full_integer_16x8``: int16 activations, int8 weights), where every tensor
between two float boundaries has to be int16, since litert-torch cannot requantize between int8 and int16 (it
folds the requantize into a neighbour: an int8 ``FULLY_CONNECTED`` with int16 output, which LiteRT runs as zeros,
or an ``ADD`` of mixed element types that does not verify). Each rewrite gives an op a form LiteRT has an int16
kernel for and that carries its own Q/DQ, so the converter quantizes nothing itself:

* ``gelu_sigmoid``: ``gelu(x)`` -> ``x * sigmoid(c2 * x + c1 * x^3)``, the tanh form of GELU (``tfl.gelu`` takes
  int8 only; LOGISTIC, MUL and ADD take int16). It differs from the erf form by at most 5e-4 (MiniLM FP32: cosine
  0.9999993 between the two).
* ``layer_norm_ops``: ``layer_norm`` over the last axis -> mean, sub, mul, mean, add eps, rsqrt, mul, mul, add
  (litert-torch lowers ``layer_norm`` to float ops between the Q/DQ it is given).
* ``scalar_operands``: a Python number multiplied, divided, added or subtracted -> a graph constant (division
  by ``c`` becomes multiplication by ``1/c``), which the annotation gives an int16 grid; left to the converter a
  constant is quantized to int8 and meets int16 in ``tfl.mul`` ("operands of mixed element types").
* ``concat_as_adds``: ``cat([a, b], d)`` -> ``pad(a) + pad(b)`` along ``d`` (``tfl.concatenation`` takes no
  int16; PAD and ADD do): a ViT's class token joining its patch embeddings.
* ``broadcast_adds``: an add whose operand broadcasts (the padding mask against the attention scores, a bias)
  reads that operand expanded to the output's shape, since ``tfl.add`` on int16 verifies only for equal shapes.

Every rewrite is exact in FP32 except ``gelu_sigmoid``; each returns how many nodes it rewrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...registry import Registry

aten = torch.ops.aten
Rewrite = Callable[[torch.fx.GraphModule], int]
REWRITES: Registry[Rewrite] = Registry("graph rewrite")

GELU_C2 = 2.0 * math.sqrt(2.0 / math.pi)  # sigmoid(2z) = (1 + tanh z) / 2
GELU_C1 = 0.044715 * GELU_C2


def _fake(value: Any, mode: Any) -> Any:
    if isinstance(value, torch.fx.Node):
        value = value.meta.get("val")
    if isinstance(value, torch.Tensor) and mode is not None and not hasattr(value, "fake_mode"):
        return mode.from_tensor(value)
    return value


def _infer(node: torch.fx.Node) -> None:
    """``node.meta["val"]``: the op run on its inputs' fake values (shapes stay symbolic)."""
    args = [a for a in node.args if isinstance(a, torch.fx.Node)]
    mode = next((a.meta["val"].fake_mode for a in args if hasattr(a.meta.get("val"), "fake_mode")), None)
    values = [_fake(a, mode) for a in node.args]
    if mode is None:
        node.meta["val"] = node.target(*values)
        return
    with mode:
        node.meta["val"] = node.target(*values)


def _call(gm: torch.fx.GraphModule, target: Any, args: tuple, like: torch.fx.Node) -> torch.fx.Node:
    """A new node computing ``target(*args)``, owned by ``like``'s module (encodings keys name it)."""
    node = gm.graph.call_function(target, args)
    node.meta.update({k: v for k, v in like.meta.items() if k in ("nn_module_stack", "stack_trace")})
    _infer(node)
    return node


def _constant(gm: torch.fx.GraphModule, value: float, like: torch.fx.Node) -> torch.fx.Node:
    i = 0
    while hasattr(gm, f"_edgekit_constant_{i}"):
        i += 1
    name = f"_edgekit_constant_{i}"
    dtype = like.meta["val"].dtype
    gm.register_buffer(name, torch.tensor(value, dtype=dtype))
    node = gm.graph.get_attr(name)
    node.meta["val"] = getattr(gm, name)
    return node


def _nodes(gm: torch.fx.GraphModule, *targets: Any) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in targets]


def _floating(node: object) -> bool:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return isinstance(val, torch.Tensor) and val.dtype.is_floating_point


def _replace(gm: torch.fx.GraphModule, node: torch.fx.Node, new: torch.fx.Node) -> None:
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _finish(gm: torch.fx.GraphModule, count: int) -> int:
    if count:
        gm.graph.lint()
        gm.recompile()
    return count


@REWRITES.register("gelu_sigmoid")
def gelu_sigmoid(gm: torch.fx.GraphModule) -> int:
    count = 0
    for node in _nodes(gm, aten.gelu.default):
        x = node.args[0]
        with gm.graph.inserting_before(node):
            cube = _call(gm, aten.mul.Tensor, (_call(gm, aten.mul.Tensor, (x, x), node), x), node)
            inner = _call(
                gm,
                aten.add.Tensor,
                (_call(gm, aten.mul.Tensor, (cube, GELU_C1), node), _call(gm, aten.mul.Tensor, (x, GELU_C2), node)),
                node,
            )
            out = _call(gm, aten.mul.Tensor, (x, _call(gm, aten.sigmoid.default, (inner,), node)), node)
        _replace(gm, node, out)
        count += 1
    return _finish(gm, count)


@REWRITES.register("layer_norm_ops")
def layer_norm_ops(gm: torch.fx.GraphModule) -> int:
    count = 0
    for node in _nodes(gm, aten.layer_norm.default):
        x, shape = node.args[:2]
        given = list(node.args[2:5])
        weight, bias, eps = given + [None, None, node.kwargs.get("eps", 1e-5)][len(given) :]
        if len(shape) != 1:
            continue
        with gm.graph.inserting_before(node):
            centred = _call(gm, aten.sub.Tensor, (x, _call(gm, aten.mean.dim, (x, [-1], True), node)), node)
            var = _call(gm, aten.mean.dim, (_call(gm, aten.mul.Tensor, (centred, centred), node), [-1], True), node)
            rstd = _call(gm, aten.rsqrt.default, (_call(gm, aten.add.Tensor, (var, float(eps)), node),), node)
            out = _call(gm, aten.mul.Tensor, (centred, rstd), node)
            if isinstance(weight, torch.fx.Node):
                out = _call(gm, aten.mul.Tensor, (out, weight), node)
            if isinstance(bias, torch.fx.Node):
                out = _call(gm, aten.add.Tensor, (out, bias), node)
        _replace(gm, node, out)
        count += 1
    return _finish(gm, count)


_SCALAR_OPS = (aten.mul.Tensor, aten.div.Tensor, aten.add.Tensor, aten.sub.Tensor)


@REWRITES.register("scalar_operands")
def scalar_operands(gm: torch.fx.GraphModule) -> int:
    count = 0
    for node in _nodes(gm, *_SCALAR_OPS):
        x, other = node.args[:2]
        if not (_floating(x) and isinstance(other, (int, float)) and not isinstance(other, bool)):
            continue
        if len(node.args) > 2 or node.kwargs:  # add/sub with alpha
            continue
        value = float(other)
        if node.target is aten.div.Tensor:
            node.target, value = aten.mul.Tensor, 1.0 / value
        with gm.graph.inserting_before(node):
            node.args = (x, _constant(gm, value, x))
        count += 1
    return _finish(gm, count)


@REWRITES.register("broadcast_adds")
def broadcast_adds(gm: torch.fx.GraphModule) -> int:
    count = 0
    for node in _nodes(gm, aten.add.Tensor):
        a, b = node.args[:2]
        if not (_floating(a) and _floating(b)) or len(node.args) > 2 or node.kwargs:
            continue
        out = node.meta["val"].shape
        shapes = [a.meta["val"].shape, b.meta["val"].shape]
        if shapes[0] == shapes[1] or out not in shapes:
            continue
        full = node.args[shapes.index(out)]
        with gm.graph.inserting_before(node):
            node.args = tuple(
                arg if shape == out else _call(gm, aten.expand_as.default, (arg, full), node)
                for arg, shape in zip(node.args, shapes)
            )
        count += 1
    return _finish(gm, count)


@REWRITES.register("concat_as_adds")
def concat_as_adds(gm: torch.fx.GraphModule) -> int:
    count = 0
    for node in _nodes(gm, aten.cat.default):
        parts = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else 0
        rank = node.meta["val"].dim()
        axis = dim % rank
        sizes = [p.meta["val"].shape[axis] if isinstance(p, torch.fx.Node) else None for p in parts]
        if len(parts) < 2 or not all(_floating(p) for p in parts) or not all(isinstance(n, int) for n in sizes):
            continue
        with gm.graph.inserting_before(node):
            padded = []
            for i, part in enumerate(parts):
                pads = [0, 0] * (rank - axis)  # constant_pad_nd: (before, after) from the last axis backwards
                pads[-2:] = [sum(sizes[:i]), sum(sizes[i + 1 :])]
                padded.append(_call(gm, aten.constant_pad_nd.default, (part, pads, 0.0), node))
            out = padded[0]
            for part in padded[1:]:
                out = _call(gm, aten.add.Tensor, (out, part), node)
        _replace(gm, node, out)
        count += 1
    return _finish(gm, count)


def apply_rewrites(gm: torch.fx.GraphModule, names: tuple[str, ...]) -> dict[str, int]:
    """Run the named rewrites in order on ``gm`` (in place); how many nodes each rewrote."""
    return {name: REWRITES.get(name)(gm) for name in names}
