"""Target ``tflite``: LiteRT flatbuffers converted with litert-torch (no TensorFlow), run by ai-edge-litert.

* fp32: direct conversion.
* fp16: fp32 model with weights cast to float16 (ai-edge-quantizer FLOAT_CASTING; LiteRT computes in fp32 or
  fp16 depending on the delegate).
* int8 (edgekit): full-integer model from edgekit's encodings. The simulated model is rewritten in PT2E form
  (quantized_decomposed Q/DQ on each quantized layer's input, weight and output, with edgekit's scales) and
  converted in LiteRT's static Q/DQ mode: no second calibration. Model inputs/outputs that border a quantized
  layer become int8; the runner quantizes/dequantizes them with the scales stored in the file.
* int8 with ``options: {dynamic: true}``: dynamic-range quantization (int8 weights, activations quantized at
  run time; PT2E dynamic).

The graph has a static batch of 1 (``batch`` in the IO spec); the runner loops over larger batches.
int64 inputs (token ids) become int32 in the file, and the artifact's IO spec says so.

The signature (``serving_default``) names its inputs and output as the model's IO spec does (``input_ids``,
``attention_mask`` -> ``logits``): the model is converted behind :class:`_Named`, which takes keyword inputs and
returns ``{output_name: tensor}``, and LiteRT names signature tensors after keyword and dict keys (positional
sample arguments would be ``args_0``, ``args_1``, ...).
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CalibrationError, UnsupportedOpError, first_line_or_type
from ..recipe import Precision, Quantizer, QuantSpec, TensorSpec
from .base import TARGETS, Artifact, CompileContext, Target, ids_as_int32, static_sample
from .pt2e_lowering import pt2e_form, source
from .tflite_16x8 import widen_conv_biases
from .tflite_kernels import kernel_note


class _Named(torch.nn.Module):
    """Keyword inputs named as the IO spec, one output in a dict under its name: what LiteRT's signature names."""

    def __init__(self, model: torch.nn.Module, names: list[str], output: str):
        super().__init__()
        self.model, self.names, self.output = model, names, output

    def forward(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.output: self.model(*[feeds[n] for n in self.names])}


def _named(ctx: CompileContext, model: Any, sample: tuple[torch.Tensor, ...]) -> tuple[Any, dict[str, torch.Tensor]]:
    names = [s.name for s in ctx.bundle.inputs]
    return _Named(model, names, ctx.bundle.output_name).eval(), dict(zip(names, sample))


def _static_config():
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize import quant_config as qc

    # The quantizer object only switches LiteRT's converter to static Q/DQ mode: the graph already holds
    # edgekit's quantize/dequantize ops, so nothing is calibrated again.
    cfg = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    return qc.QuantConfig(pt2e_quantizer=pq.PT2EQuantizer().set_global(cfg))


ACTIVATIONS = {"int8": "full_integer", "int16": "full_integer_16x8"}  # -> the quantization profile


@dataclass(frozen=True)
class TFLiteOptions:
    """``dynamic``: int8 as dynamic-range quantization (PT2E dynamic: int8 weights, activations quantized at run
    time) instead of edgekit's static encodings. ``activations``: the static program's activation type, ``int8``
    or ``int16`` (16x8: int8 weights; a program of edgekit's quantizer, profile ``full_integer_16x8``)."""

    dynamic: bool = False
    activations: str = "int8"

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations '{self.activations}' is not one of {', '.join(ACTIVATIONS)}")
        if self.dynamic and self.activations != "int8":
            raise ValueError("dynamic-range int8 quantizes activations at run time: drop activations or dynamic")


class TFLiteTarget(Target):
    name = "tflite"
    quant_profile = "full_integer"
    runtime = "litert"
    module = "litert_torch"
    extra = "tflite"
    options = TFLiteOptions

    def quant_problem(self, quant: QuantSpec) -> str | None:
        if quant.quantizer is Quantizer.NATIVE:
            return "tflite: the native path is options: {dynamic: true} (PT2E dynamic); use quantizer: edgekit"
        return None

    def profile(self, options: TFLiteOptions) -> str:
        return ACTIVATIONS[options.activations]

    def compile(self, ctx: CompileContext, precision: Precision, options: TFLiteOptions, out: Path) -> Artifact:
        self.require()
        art = Artifact(self.name, precision, out, self.runtime, "model.tflite")
        sample = static_sample(ctx)
        named = lambda model: _named(ctx, model, sample)  # noqa: E731
        if precision is Precision.INT8 and options.dynamic:
            if any(isinstance(m, torch.nn.Embedding) for m in ctx.model.modules()):
                # Known LiteRT limitation: dynamic mode quantizes the embedding table with a non-zero zero point,
                # which its EMBEDDING_LOOKUP kernel rejects at load ("embedding_lookup.cc:73 zero_point == 0").
                raise UnsupportedOpError(
                    "tflite: dynamic-range int8 cannot hold embedding lookups (LiteRT's "
                    "EMBEDDING_LOOKUP rejects the quantized table); use static int8 "
                    "(options without dynamic: edgekit encodings)"
                )
            flat = self._convert(*self._dynamic(*named(ctx.model)), dynamic=True)
            art.quantizer = "native"
            art.notes.append("dynamic-range int8 (PT2E dynamic): int8 weights, activations quantized at run time")
        elif precision is Precision.INT8:
            if ctx.sim is None:
                raise CalibrationError("tflite int8 needs calibration: set quantization.calibration")
            if options.activations != "int8" and ctx.quant.quantizer is not Quantizer.EDGEKIT:
                raise UnsupportedOpError(
                    f"tflite: activations: {options.activations} is a program of edgekit's quantizer (profile "
                    f"full_integer_16x8), not of {ctx.quant.quantizer.value}; set quantization.quantizer: edgekit"
                )
            flat = self._convert(*named(pt2e_form(ctx.sim)), static=True)
            if options.activations == "int16":
                flat, widened = widen_conv_biases(flat)
                if widened:
                    art.notes.append(f"{widened} int16 convolution biases stored as int64 (LiteRT's 16x8 kernels)")
            art.quantizer = ctx.quant.quantizer.value
            art.notes.append(kernel_note(flat, source(ctx.quant)))
        else:
            flat = self._convert(*named(ctx.model))
            if precision is Precision.FP16:
                flat = _cast_weights_fp16(flat)
                art.notes.append("fp16 weights (ai-edge-quantizer float casting), fp32 activations")
        (out / art.file).write_bytes(flat)
        if any(s.dtype == "int64" for s in ctx.bundle.inputs):
            art.notes.append("int64 inputs are int32 in the .tflite (LiteRT has no int64 tensors here)")
        return art

    def io_spec(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        return ids_as_int32(inputs)

    @staticmethod
    def _dynamic(model: torch.nn.Module, sample: dict[str, torch.Tensor]):
        from litert_torch.quantize import pt2e_quantizer as pq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        cfg = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        quantizer = pq.PT2EQuantizer().set_global(cfg)
        prepared = prepare_pt2e(torch.export.export(model.eval(), (), sample).module(), quantizer)
        prepared(**sample)
        return (convert_pt2e(prepared, fold_quantize=False), quantizer), sample

    @staticmethod
    def _convert(model: Any, sample: dict[str, torch.Tensor], static: bool = False, dynamic: bool = False) -> bytes:
        """``sample``: keyword inputs (they name the signature's inputs)."""
        import litert_torch
        from litert_torch.quantize import quant_config as qc

        from .tflite_layout import register_pad_layout

        register_pad_layout()
        kwargs = {}
        if static:
            kwargs["quant_config"] = _static_config()
        if dynamic:
            model, quantizer = model
            kwargs["quant_config"] = qc.QuantConfig(pt2e_quantizer=quantizer)
        log = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                warnings.simplefilter("ignore")
                edge = litert_torch.convert(model, (), sample, **kwargs)  # callers pass eval-mode modules
                return bytes(edge.model_content())
        except Exception as exc:
            raise UnsupportedOpError(f"tflite: conversion failed: {converter_reason(exc)}") from None


_MLIR_ERROR = re.compile(r"(?:(?P<file>[^\s:\"]+\.py):(?P<line>\d+):\d+: )?error: (?P<msg>.+)")
_NODE = re.compile(r"While executing %(?P<node>\S+) : .*?target=(?P<op>[\w.:]+)")


def converter_reason(exc: BaseException) -> str:
    """One readable line from a litert-torch failure: its first line, the MLIR ``error:`` it wraps (MLIR's
    own first line is often just "Unable to parse type:" or a file path), the model source line the error
    points at, and the graph node being lowered."""
    text = "\n".join([str(exc), *getattr(exc, "__notes__", [])])
    head = first_line_or_type(exc)
    where = []
    found = _MLIR_ERROR.search(text)
    if found:
        head = head.split(": /")[0].split(": error:")[0].rstrip(": ") + ": " + found["msg"].strip()
        if found["file"]:
            where.append(f"at {found['file'].split('site-packages/')[-1]}:{found['line']}")
    node = _NODE.search(text)
    if node:
        where.append(f"node {node['node']}: {node['op']}")
    return f"{head} ({', '.join(where)})" if where else head


def _cast_weights_fp16(flat: bytes) -> bytes:
    from ai_edge_quantizer import quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(
        regex=".*",
        operation_name=TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=AlgorithmName.FLOAT_CASTING,
    )
    q = quantizer.Quantizer(bytearray(flat))
    q.load_quantization_recipe(rm.get_quantization_recipe())
    return bytes(q.quantize().quantized_model)


TARGETS.add("tflite", TFLiteTarget())
