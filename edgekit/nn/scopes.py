"""Module names (qualified, dotted: ``encoder.layer.0.attention``) and the scopes they make: building a child's
name, finding a module's parent by name, replacing a module by name, and whether a name lies inside a scope.

The root module's name is ``""``; it is the scope that holds every module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn


def qualified(parent: str, child: str) -> str:
    """The name of ``parent``'s child ``child``: ``encoder`` + ``layer`` -> ``encoder.layer`` (``"" + x -> x``)."""
    return f"{parent}.{child}" if parent else child


def parent_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module that holds ``name`` (a module, parameter or buffer name) and its attribute there:
    ``encoder.layer.0.dense`` -> (``model.encoder.layer[0]``, ``"dense"``); ``fc`` -> (``model``, ``"fc"``)."""
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def attribute(root: object, path: str) -> Any:
    """The object at dotted ``path`` under ``root``, any kind of attribute (a submodule, parameter, buffer or
    plain tensor: an fx ``get_attr`` target), which ``get_submodule`` would refuse past the last module."""
    value = root
    for part in path.split("."):
        value = getattr(value, part)
    return value


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the module named ``name`` with ``new`` (``setattr`` on its parent)."""
    parent, attr = parent_of(model, name)
    setattr(parent, attr, new)


def inside(name: str, scope: str) -> bool:
    """Whether module ``name`` is ``scope`` or one of its descendants (by name: ``layers.10`` is not inside
    ``layers.1``). Every name is inside the root scope ``""``."""
    return scope == "" or name == scope or name.startswith(scope + ".")


def child_slots(model: nn.Module) -> Iterator[tuple[nn.Module, str, str, nn.Module]]:
    """``(parent, attribute, qualified name, child)`` for every child of every module of ``model``, parents in
    ``named_modules`` order. Safe to replace the child (``setattr(parent, attribute, new)``) while iterating:
    the modules are listed first, each parent's children when it is reached, so a replacement is not visited
    (the replaced module and its own children still are)."""
    for parent_name, parent in list(model.named_modules()):
        for attr, child in list(parent.named_children()):
            yield parent, attr, qualified(parent_name, attr), child
