"""Read and replace a captured graph's parameters (``get_attr`` targets) without touching the user's model.

``ExportedProgram.module()`` shares its parameter tensors with the model it captured, so the graph passes
(SmoothQuant, bias correction) never write in place: they put a new tensor on the graph module.
"""

from __future__ import annotations

import torch

from ...nn.scopes import attribute, parent_of


def tensor_of(gm: torch.fx.GraphModule, node: object) -> torch.Tensor | None:
    """The tensor behind a ``get_attr`` node (None for anything else)."""
    if not isinstance(node, torch.fx.Node) or node.op != "get_attr":
        return None
    value = attribute(gm, str(node.target))
    return value if isinstance(value, torch.Tensor) else None


def replace_tensor(gm: torch.fx.GraphModule, node: torch.fx.Node, value: torch.Tensor) -> None:
    """Point ``node``'s attribute at a new tensor (a parameter stays a parameter, without grad)."""
    owner, name = parent_of(gm, str(node.target))
    old = getattr(owner, name)
    value = value.detach().to(old.dtype).contiguous()
    if isinstance(old, torch.nn.Parameter):
        setattr(owner, name, torch.nn.Parameter(value, requires_grad=False))
    elif name in owner._buffers:
        owner._buffers[name] = value
    else:
        setattr(owner, name, value)


def register_tensor(gm: torch.fx.GraphModule, value: torch.Tensor, prefix: str) -> str:
    """Put ``value`` on ``gm`` as a new buffer ``<prefix>_<i>``; returns its name (a ``get_attr`` target)."""
    i = 0
    while hasattr(gm, f"{prefix}_{i}"):
        i += 1
    gm.register_buffer(f"{prefix}_{i}", value.detach().contiguous())
    return f"{prefix}_{i}"
