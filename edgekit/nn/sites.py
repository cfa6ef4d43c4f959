"""Where a transformer's attention and layer outputs are, found from the module tree (no per-model tables).

A *site* is one transformer layer: its attention block (the module whose output is the attention output:
the self-attention module, or its parent when HF groups it with the output projection, e.g. BERT's
``BertAttention``) and the layer itself (whose output is the residual stream after the FFN).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from .attention import attention_shape
from .scopes import qualified

_LAYER_SUFFIXES = ("Layer", "Block")  # BertLayer, OPTDecoderLayer, SwinBlock ...


@dataclass(frozen=True)
class Site:
    name: str  # the layer's module name
    attention: nn.Module
    layer: nn.Module
    attention_name: str = ""


def transformer_sites(model: nn.Module) -> list[Site]:
    parents: dict[str, tuple[str, nn.Module]] = {}
    modules = dict(model.named_modules())
    for name, m in modules.items():
        for child in dict(m.named_children()):
            parents[qualified(name, child)] = (name, m)
    sites: list[Site] = []
    for name, m in modules.items():
        if attention_shape(m) is None:
            continue
        attention, att_name, layer, layer_name, cur = m, name, None, "", name
        while cur in parents:
            pname, parent = parents[cur]
            cls = type(parent).__name__
            if layer is None and cls.endswith("Attention"):
                attention, att_name = parent, pname
            if cls.endswith(_LAYER_SUFFIXES):
                layer, layer_name = parent, pname
                break
            cur = pname
        if layer is not None:
            sites.append(Site(layer_name, attention, layer, att_name))
    names = [s.name for s in sites]
    # a layer holding several attention modules (CrossViT's fusion: one cross-attention per branch) is
    # named by each attention module instead, so every row of a per-layer table is distinct
    return [replace(s, name=s.attention_name) if names.count(s.name) > 1 else s for s in sites]


def first_tensor(output: object) -> object:
    """HF blocks return tensors or tuples whose first element is the hidden state."""
    return output[0] if isinstance(output, (tuple, list)) else output
