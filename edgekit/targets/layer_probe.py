"""Shared by the targets' layer-output probes (``Target.layer_outputs``): locating a module's output in a graph.

Every quantized layer of the simulated model is named after the module it wraps; the exporter names each node of
the runtime's graph by its module scope (``/hf/vit/layers.0/attention/q_proj/...``), so a layer's output is the
tensor that leaves that scope. ``edgekit.validate.divergence`` compares those tensors with the simulated model's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn.scopes import inside as in_scope

# {layer: (output array, pre_bias)}; pre_bias: the runtime moved the layer's bias addition out of its scope
# (OpenVINO does), so the tensor lacks the bias
LayerOutputs = dict[str, tuple[np.ndarray, bool]]


@dataclass(frozen=True)
class Node:
    name: str
    inputs: tuple[Any, ...]  # tensor ids
    outputs: tuple[Any, ...]


def scope_of(node_name: str) -> str:
    """``/features/features.0/branches.0/conv/Conv`` -> ``features.0.branches.0.conv`` (a module name).

    The exporter writes one path segment per *called* module; a container's child is ``container.index``, so a
    called ``nn.Sequential`` shows as ``features/features.0`` and an uncalled ``nn.ModuleList`` as ``layers.0``."""
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def layer_exits(nodes: list[Node], layers: Iterable[str], graph_outputs: set[Any]) -> dict[str, Any]:
    """For each layer (module name), the tensor id that leaves its scope (last in graph order), if found."""
    scopes = [scope_of(n.name) for n in nodes]
    consumers: dict[Any, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            consumers.setdefault(t, []).append(i)
    exits: dict[str, Any] = {}
    for layer in layers:
        inside = {i for i, s in enumerate(scopes) if in_scope(s, layer)}
        found = None
        for i in sorted(inside):
            if not nodes[i].inputs:
                continue  # a constant: not the layer's output even if something outside reads it
            for t in nodes[i].outputs:
                users = consumers.get(t, [])
                if t in graph_outputs or any(u not in inside for u in users):
                    found = t
        if found is not None:
            exits[layer] = found
    return exits
