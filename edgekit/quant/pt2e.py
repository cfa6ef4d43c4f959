"""Reading and rewriting quantized PT2E programs (``convert_pt2e`` output: quantized_decomposed Q/DQ nodes).

A quantizer that produces a PT2E program (Intel Neural Compressor) keeps its scales in the graph, not in an
:class:`EncodingSet`. :func:`read_encodings` reads them back into one, keyed by graph node and named after the
module that owns the node, so ``encodings.json`` and the report stay readable whoever quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..nn.scopes import attribute
from .encodings import Encoding, EncodingSet

_Q = torch.ops.quantized_decomposed


@dataclass
class ProgramResult:
    """What a graph quantizer (edgekit's or Neural Compressor) returns: the quantized PT2E program (the
    run's simulated model), its scales read back as encodings, and the report's calibration info."""

    program: torch.fx.GraphModule
    encodings: EncodingSet
    info: dict[str, Any]


def _is(node: torch.fx.Node, *ops) -> bool:
    return node.op == "call_function" and node.target in ops


def _quantize_ops() -> tuple:
    return (_Q.quantize_per_tensor.default, _Q.quantize_per_channel.default)


def _dequantize_ops() -> tuple:
    return (_Q.dequantize_per_tensor.default, _Q.dequantize_per_channel.default)


def _value(gm: torch.fx.GraphModule, arg) -> torch.Tensor:
    if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
        return torch.as_tensor(attribute(gm, str(arg.target)))
    return torch.as_tensor(arg)


def _owner(node: torch.fx.Node) -> str:
    """The module path that produced ``node`` (``nn_module_stack``), or ``model`` for top-level code."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "model"
    path = list(stack.values())[-1][0]
    return str(path).replace("L['self'].", "").replace("L__self___", "") or "model"


def node_label(node: torch.fx.Node) -> str:
    """``features.0.conv/conv2d_3``: the producing module and the node, as encodings.json keys it."""
    return f"{_owner(node)}/{node.name}"


def _consumer(node: torch.fx.Node) -> torch.fx.Node | None:
    """The first op that reads this Q/DQ pair's output (skipping the dequantize)."""
    for user in node.users:
        if _is(user, *_dequantize_ops()):
            for op in user.users:
                return op
    return None


def read_encodings(gm: torch.fx.GraphModule, producer: str) -> EncodingSet:
    """One :class:`Encoding` per quantize node: key ``<module>/<consuming node>.<weight|input>``."""
    out = EncodingSet(meta={"producer": producer, "keys": "<module>/<graph node>.<weight|input|output>"})
    for node in gm.graph.nodes:
        if not _is(node, *_quantize_ops()):
            continue
        src = node.args[0]
        per_channel = node.target == _Q.quantize_per_channel.default
        scale = _value(gm, node.args[1]).flatten().tolist()
        zp = [int(z) for z in _value(gm, node.args[2]).flatten().tolist()]
        axis = int(node.args[3]) if per_channel else None
        qmin, dtype = (node.args[4], node.args[6]) if per_channel else (node.args[3], node.args[5])
        role = "weight" if isinstance(src, torch.fx.Node) and src.op == "get_attr" else "input"
        user = _consumer(node)
        if user is None:
            role, user = "output", src
        key = f"{_owner(user)}/{user.name}.{role}"
        out.tensors[key] = Encoding(
            tuple(float(s) for s in scale), tuple(zp), torch.iinfo(dtype).bits, int(qmin) < 0, axis
        )
    return out


def activations_as_int8(gm: torch.fx.GraphModule) -> int:
    """Rewrite uint8 per-tensor activation Q/DQ as int8 with zero point - 128, in place; returns the count.

    Both grids hold the same values (q_s8 = q_u8 - 128). x86 quantizers (INC's) emit uint8 activations;
    LiteRT's full-integer kernels take int8 activations only (uint8 ones crash its interpreter)."""
    count = 0
    for node in gm.graph.nodes:
        if not _is(node, _Q.quantize_per_tensor.default, _Q.dequantize_per_tensor.default):
            continue
        x, scale, zp, qmin, qmax, dtype = node.args[:6]
        if dtype != torch.uint8 or isinstance(zp, torch.fx.Node):
            continue
        node.args = (x, scale, int(zp) - 128, int(qmin) - 128, int(qmax) - 128, torch.int8, *node.args[6:])
        count += 1
    if count:
        gm.recompile()
    return count
