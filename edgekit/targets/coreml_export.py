"""The ``torch.export`` program that coremltools 9 converts (its ExportedProgram frontend).

Why not TorchScript: tracing bakes the HF attention-mask construction into ops coremltools' TorchScript
frontend lacks (``new_ones``), and it cannot express a flexible batch or sequence. ``torch.export`` records
both, and coremltools reads the symbolic dimensions of the exported program as ``RangeDim``.

Decomposition: coremltools wants ATen-dialect programs (``run_decompositions``). Decomposing everything to
core ATen turns some ops coremltools converts well (``im2col``, ``unfold``) into ``as_strided`` / ``index_put``
forms it cannot convert, and decomposing nothing leaves ops it has no converter for (``new_ones``). So the table
is the core-ATen default minus every op coremltools has its own converter for.

Two graph rewrites then keep the program inside what the frontend reads, without changing a value:
``aten.alias`` (left by slicing registered buffers, e.g. rotary ``inv_freq``) becomes its input, and
``bitwise_or`` / ``bitwise_and`` of booleans (HF mask arithmetic) become ``logical_or`` / ``logical_and``, and
``gather`` indices computed in int64 (last-token pooling from the mask) are cast to int32, the only index type
Core ML's ``gather_along_axis`` takes.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import torch

ALIASES = ("alias", "alias_copy", "lift_fresh_copy")


def decomposition_table() -> Any:
    """Core-ATen decompositions for the ops coremltools has no converter for (a fresh table per call)."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if _TORCH_OPS_REGISTRY.get_func(op.name()) is not None:
            table.pop(op)  # coremltools converts it as one op: keep it whole
    return table


def _rewrite(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    aten = torch.ops.aten
    logical = {aten.bitwise_or.Tensor: aten.logical_or.default, aten.bitwise_and.Tensor: aten.logical_and.default}
    graph = program.graph
    changed = False
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", "").split(".")[0]
        if name in ALIASES and node.args and isinstance(node.args[0], torch.fx.Node):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            changed = True
        elif node.target in logical and all(_is_bool(a) for a in node.args):
            node.target = logical[node.target]
            changed = True
        elif node.target is aten.gather.default and _is_int64(node.args[2]):
            with graph.inserting_before(node):
                index = graph.call_function(aten._to_copy.default, (node.args[2],), {"dtype": torch.int32})
            index.meta["val"] = node.args[2].meta["val"].to(torch.int32)
            node.args = (node.args[0], node.args[1], index, *node.args[3:])
            changed = True
    if changed:
        graph.lint()
        program.graph_module.recompile()
    return program


def _is_int64(arg: Any) -> bool:
    val = arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None
    return isinstance(val, torch.Tensor) and val.dtype == torch.int64


def _is_bool(arg: Any) -> bool:
    val = arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None
    return isinstance(val, torch.Tensor) and val.dtype == torch.bool


def export_program(
    model: torch.nn.Module, sample: tuple[torch.Tensor, ...], dynamic_shapes: Any = None
) -> torch.export.ExportedProgram:
    """``model`` exported (non-strict) at ``sample``, decomposed and rewritten for coremltools."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), sample, dynamic_shapes=dynamic_shapes, strict=False)
        program = program.run_decompositions(decomposition_table())
    return _rewrite(program)
