"""``reparameterize``: multi-branch blocks -> one conv; ``fold_batchnorm``: Conv/Linear + BatchNorm -> one op."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn.fold import fuse_bn
from ..nn.scopes import parent_of
from . import NoOptions, TransformResult, register


@register(
    "reparameterize",
    phase="deploy",
    exact=True,
    description="multi-branch train-time blocks (RepVGG, MobileOne, RepMixer) -> one convolution each",
)
def reparameterize(model: nn.Module, options: NoOptions) -> TransformResult:
    fused = 0

    def visit(module: nn.Module) -> None:
        nonlocal fused
        if callable(getattr(module, "reparameterize", None)):
            module.reparameterize()  # an outer block fuses its inner branches itself: do not descend
            fused += 1
            return
        for child in module.children():
            visit(child)

    visit(model)
    return TransformResult(model, {"blocks_fused": fused})


def _fold_pair(layer: nn.Module, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
    with torch.no_grad():
        w, b = fuse_bn(layer.weight, layer.bias, bn)
        layer.weight.copy_(w)
        if layer.bias is None:
            layer.bias = nn.Parameter(b.clone())
        else:
            layer.bias.copy_(b)


_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@register(
    "fold_batchnorm",
    phase="deploy",
    exact=True,
    description="Conv/Linear followed by BatchNorm -> the Conv/Linear alone (any model torch.fx can trace)",
)
def fold_batchnorm(model: nn.Module, options: NoOptions) -> TransformResult:
    """Fold every BN whose only input is a Conv/Linear output used by nothing else.

    The graph comes from ``torch.fx``; models fx cannot trace fall back to adjacent pairs in nn.Sequential.
    """
    pairs = _fx_pairs(model)
    if pairs is None:
        pairs = [
            (seq[i], seq[i + 1], seq, i + 1)
            for seq in model.modules()
            if isinstance(seq, nn.Sequential)
            for i in range(len(seq) - 1)
            if isinstance(seq[i], _FOLDABLE) and isinstance(seq[i + 1], _BN)
        ]
    for layer, bn, parent, key in pairs:
        _fold_pair(layer, bn)
        if isinstance(parent, nn.Sequential):
            parent[key] = nn.Identity()
        else:
            setattr(parent, key, nn.Identity())
    return TransformResult(model, {"batchnorms_folded": len(pairs)})


def _fx_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module, Any]] | None:
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return None
    mods = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BN):
            continue
        src = node.args[0] if node.args else None
        if (
            getattr(src, "op", None) == "call_module"
            and isinstance(mods.get(src.target), _FOLDABLE)
            and len(src.users) == 1
        ):
            parent, attr = parent_of(model, node.target)
            key: Any = int(attr) if isinstance(parent, nn.Sequential) else attr
            pairs.append((mods[src.target], mods[node.target], parent, key))
    return pairs
