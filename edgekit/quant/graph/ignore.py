"""``quantization.ignore``: graph nodes left in float, chosen by the module that produced them.

A pattern is a module-name glob (``*.classifier``, ``features.0.*``) or ``type:ClassName`` (``type:Conv2d``, the
class of the innermost module, subclasses by their own name). Matching reads each op node's ``nn_module_stack``, so
it works on any captured model whoever wrote it; the matched nodes are left unannotated, like the nodes
accuracy-aware quantization keeps in float.
"""

from __future__ import annotations

import fnmatch

import torch

from ..pt2e import _owner, node_label
from .ops import OP_KINDS


def _module_class(node: torch.fx.Node) -> str:
    """The class name of the innermost module that ran ``node`` ("" for top-level code)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    cls = list(stack.values())[-1][1]
    return cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]


def matches(path: str, cls: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.startswith("type:"):
            if cls == pattern[5:]:
                return True
        elif fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, f"{pattern}.*"):
            return True
    return False


def ignored_nodes(gm: torch.fx.GraphModule, patterns: tuple[str, ...]) -> frozenset[str]:
    """Labels (``<module>/<node>``) of the quantizable op nodes whose module matches one of ``patterns``."""
    if not patterns:
        return frozenset()
    out = set()
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in OP_KINDS:
            continue
        if matches(_owner(node), _module_class(node), patterns):
            out.add(node_label(node))
    return frozenset(out)
