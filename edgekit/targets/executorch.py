"""Target ``executorch``: ``.pte`` programs for PyTorch's on-device runtime, lowered with the XNNPACK delegate.

* fp32: ``torch.export`` -> ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` -> ``.pte``.
* fp16: the model cast to half inside a float32 interface (inputs and output stay float32, as on the other
  targets); XNNPACK runs the half-precision kernels it has, the rest falls back to portable kernels.
* int8 (edgekit): the same PT2E-form program the TFLite target converts (quantized_decomposed Q/DQ with
  edgekit's scales on each quantized layer's input, weight and output). Weight quantize ops are folded into
  int8 constants first (as ``convert_pt2e(fold_quantize=True)`` does), which is the pattern XNNPACK's
  quantized linear/conv kernels match. No second calibration.

Every op that XNNPACK does not take runs on ExecuTorch's portable kernels; the artifact's notes and
``artifact.json`` say which ops were delegated and which were not. The program has a static batch of 1 and, for
text models, the calibration sample's sequence length; the runner loops over larger batches.

``forward`` takes its inputs by position (ExecuTorch methods have no argument names); their names, in that
order, and the output's are in the program itself, as the constant methods ``input_names`` and ``output_names``
(and in ``artifact.json``'s ``inputs`` and ``output``): the runner feeds by name through them.

``options: {delegate: coreml}`` lowers to the Core ML delegate instead: the .pte is built here, but runs on Apple
devices only, so it is validated nowhere here and its row says so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CalibrationError, UnsupportedOpError, first_line_or_type
from ..recipe import Precision
from .base import TARGETS, Artifact, CompileContext, Target, static_sample
from .pt2e_lowering import pt2e_form, source

DELEGATES = ("xnnpack", "coreml")


class _Half(torch.nn.Module):
    """A float32 interface around a half-precision model: the artifact's IO spec stays that of the model."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.half()

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        cast = [a.half() if a.is_floating_point() else a for a in args]
        return self.model(*cast).float()


@dataclass(frozen=True)
class ExecuTorchOptions:
    """``delegate``: the backend the program is lowered to, ``xnnpack`` (runs here) or ``coreml`` (Apple only)."""

    delegate: str = "xnnpack"

    def __post_init__(self) -> None:
        if self.delegate not in DELEGATES:
            raise ValueError(f"delegate '{self.delegate}' is not one of {', '.join(DELEGATES)}")


class ExecuTorchTarget(Target):
    name = "executorch"
    quant_profile = "full_integer"
    runtime = "executorch"
    module = "executorch"
    extra = "executorch"
    options = ExecuTorchOptions

    def compile(self, ctx: CompileContext, precision: Precision, options: ExecuTorchOptions, out: Path) -> Artifact:
        self.require()
        delegate = options.delegate
        art = Artifact(self.name, precision, out, self.runtime, "model.pte", options={"delegate": delegate})
        sample = tuple(t.clone(memory_format=torch.contiguous_format) for t in static_sample(ctx))
        if precision is Precision.INT8:
            if ctx.sim is None:
                raise CalibrationError("executorch int8 needs calibration: set quantization.calibration")
            model = _folded(pt2e_form(ctx.sim), sample)
            floated = float_weights_xnnpack_cannot_take(model)
            art.quantizer = ctx.quant.quantizer.value
            art.notes.append(f"int8 from {source(ctx.quant)} (PT2E-form Q/DQ, weights folded to int8 constants)")
            if floated:
                art.notes.append(
                    f"{_few(floated, 2)}: run in float with their dequantized int8 weights (XNNPACK takes an "
                    "int8 weight only in a conv/linear whose output is quantized, not a float-output layer or an "
                    "embedding lookup)"
                )
        elif precision is Precision.FP16:
            import copy

            model = _Half(copy.deepcopy(ctx.model).eval())
            art.notes.append("fp16 weights and compute inside the program; float32 inputs and output")
        else:
            model = ctx.model.eval()
        names = {"input_names": [s.name for s in ctx.bundle.inputs], "output_names": [ctx.bundle.output_name]}
        buffer, ops = _lower(model, sample, delegate, names)
        (out / art.file).write_bytes(buffer)
        art.options["ops"] = ops
        art.notes.append(_ops_note(ops, delegate))
        return art

    def cannot_express(self, quant) -> str | None:
        if quant.quantizer.value == "neural-compressor":
            return (
                "executorch: XNNPACK's static int8 linear/conv need quantized outputs, and neural-compressor's x86 "
                "program quantizes only their inputs and weights; the weight dequantize_per_channel left outside "
                "the delegate has no portable kernel (lowering fails with 'Missing out variants')"
            )
        return None

    def cannot_run_here(self, artifact: Artifact) -> str | None:
        if artifact.options.get("delegate") == "coreml" and sys.platform != "darwin":
            return (
                "built with the Core ML delegate, which runs on Apple devices only: not validated or measured "
                "here (edgekit bench RUN --device ssh://USER@MAC runs it there)"
            )
        return None


def _folded(model: torch.nn.Module, sample: tuple[torch.Tensor, ...]) -> torch.nn.Module:
    """Export, fold weight quantize ops into int8 constants, and hand back the folded graph module."""
    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

    gm = _quietly(lambda: torch.export.export(model.eval(), sample).module())
    constant_fold(gm, _quant_node_constraint)
    return gm


def _requantized(node: torch.fx.Node) -> bool:
    """Whether the layer's output is quantized, directly or after the ReLU/ReLU6 XNNPACK fuses into it."""
    from ..quant.graph.ops import fused_activation

    act = fused_activation(node)
    if act is not None:
        node = act
    return bool(node.users) and all("quantize_per_tensor" in str(u.target) for u in node.users)


def float_weights_xnnpack_cannot_take(gm: torch.fx.GraphModule) -> list[str]:
    """Replace ``dequantize_per_channel(int8 weight)`` by its float values unless every reader is a conv/linear
    whose output is quantized; returns the layers that read them. XNNPACK takes a per-channel int8 weight only as
    DQ -> conv/linear -> Q, and a dequantize it leaves outside has no portable kernel ("Missing out variants"):
    a layer with a float output (the graph quantizer keeps logits float) or an int8 embedding table (``full_integer``
    quantizes tables; XNNPACK has no int8 lookup). The values are exactly the program's; those layers run in
    float."""
    from ..quant.pt2e import _value

    found = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or "dequantize_per_channel" not in str(node.target):
            continue
        weight = node.args[0]
        if not isinstance(weight, torch.fx.Node) or weight.op != "get_attr" or not node.users:
            continue
        if all(any(k in str(u.target) for k in _WEIGHT_OPS) and _requantized(u) for u in node.users):
            continue  # XNNPACK's int8 conv/linear
        q, scale, zp, axis, *_ = node.args
        with torch.no_grad():
            values = node.target(_value(gm, q), _value(gm, scale), _value(gm, zp), *node.args[3:])
        layer = next(iter(node.users))
        found.append(_layer_name(layer))
        name = f"_edgekit_float_weight_{len(found)}"
        gm.register_buffer(name, values)
        with gm.graph.inserting_before(node):
            const = gm.graph.get_attr(name)
        node.replace_all_uses_with(const)
        gm.graph.erase_node(node)
    if found:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return found


def _layer_name(node: torch.fx.Node) -> str:
    """The module that ran ``node`` (innermost of its ``nn_module_stack``, without the export's ``L['self'].``
    and the wrapper's ``model.``), or the node's own name for top-level code."""
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    return str(stack[-1][0]).removeprefix("L['self'].").removeprefix("model.") if stack else node.name


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


_WEIGHT_OPS = ("conv", "linear", "addmm", "mm")


def _partitioner(delegate: str):
    if delegate == "coreml":
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        return CoreMLPartitioner()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


# What a known lowering failure means, appended to its one-line reason.
_HINTS = {
    "Missing out variants": "the delegate left these quantized ops outside it; keep those layers in float",
    "only supports keep_dim == True": (
        "the XNNPACK partitioner takes max/amax over a dimension only with keepdim=True; the model reduces "
        "without it (x.max(dim).values)"
    ),
}


def _lower(
    model: torch.nn.Module, sample: tuple[torch.Tensor, ...], delegate: str, constants: dict[str, Any] | None = None
) -> tuple[bytes, dict]:
    """The .pte and its delegation; ``constants``: methods returning those values (the IO names)."""
    from executorch.exir import to_edge_transform_and_lower

    def run():
        program = torch.export.export(model, sample)
        edge = to_edge_transform_and_lower(
            program, partitioner=[_partitioner(delegate)], constant_methods=constants or None
        )
        ops = delegation(edge.exported_program().graph_module)
        return bytes(edge.to_executorch().buffer), ops

    try:
        return _quietly(run)
    except Exception as exc:
        reason = first_line_or_type(exc)
        reason += next((f" ({hint})" for known, hint in _HINTS.items() if known in reason), "")
        raise UnsupportedOpError(f"executorch: lowering failed: {reason}") from None


def _op_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))
    return name.split("::")[-1].replace(".default", "")


def delegation(gm: torch.fx.GraphModule) -> dict[str, Any]:
    """Which ops went into the delegate and which run on portable kernels (counted by op name)."""
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    partitions = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target.__class__.__name__ == "builtin_function_or_method":
            continue
        if "executorch_call_delegate" in str(node.target):
            partitions += 1
            lowered = getattr(gm, node.args[0].target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and "getitem" not in str(inner.target):
                    inside[_op_name(inner.target)] += 1
            continue
        outside[_op_name(node.target)] += 1
    return {"partitions": partitions, "delegated": dict(inside.most_common()), "portable": dict(outside.most_common())}


def _ops_note(ops: dict[str, Any], delegate: str) -> str:
    n_in, n_out = sum(ops["delegated"].values()), sum(ops["portable"].values())
    portable = ", ".join(f"{k} x{v}" for k, v in ops["portable"].items()) or "none"
    return (
        f"{delegate}: {n_in} ops delegated in {ops['partitions']} partitions; {n_out} on portable kernels ({portable})"
    )


def _quietly(fn):
    """ExecuTorch and torch.export print per-op progress and warnings; keep them out of edgekit's output."""
    log = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("executorch", "torch._export", "torch.export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            return fn()
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


TARGETS.add("executorch", ExecuTorchTarget())
