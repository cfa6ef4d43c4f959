"""Target ``coreml``: a Core ML ML Program (.mlpackage) converted with coremltools 9.

* fp32 / fp16: ``compute_precision`` FLOAT32 / FLOAT16.
* int8, ``options.int8_mode``:
  ``w8a8`` (default): edgekit's encodings as quantize/dequantize ops (activations) and int8 constexpr weights;
  ``weights``: weight-only linear int8 (coremltools ``linear_quantize_weights``);
  ``palettize``: weight palettization with ``palettize_bits`` (a 2^n-entry lookup table per tensor, k-means).
  Both skip tensors smaller than ``weight_threshold`` elements (default 2048, as coremltools).
* Options: ``minimum_deployment_target`` (default iOS17: activation quantize ops need it), ``compute_units``
  (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE). Metadata (author, version, IO descriptions, recipe) is embedded.

Prediction needs macOS. Elsewhere the program is executed by edgekit's reference interpreter built on
coremltools' op value inference (labelled so in the report, on a capped number of samples) and latency is
"not measured here".
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CalibrationError, RecipeError, UnsupportedOpError
from ..quant.fakequant import decomposed
from ..recipe import Precision, Quantizer, QuantSpec, TensorSpec
from .base import TARGETS, Artifact, CompileContext, Target, _first_line, ids_as_int32
from .binary_lowering import lower_binary_weights

ON_MACOS = sys.platform == "darwin"
REFERENCE_SAMPLES = 1000


class CoreMLTarget(Target):
    name = "coreml"
    runtime = "coreml"
    module = "coremltools"
    extra = "coreml"
    option_keys = ("minimum_deployment_target", "compute_units", "int8_mode", "palettize_bits", "weight_threshold")
    measures_latency = ON_MACOS
    validation_limit = None if ON_MACOS else REFERENCE_SAMPLES

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if ok and not ON_MACOS:
            return True, "converts here; numerics by a reference interpreter (prediction and latency need macOS)"
        return ok, why

    def quant_problem(self, quant: QuantSpec) -> str | None:
        if quant.quantizer is Quantizer.NATIVE:
            return "coreml: native int8 is options: {int8_mode: weights | palettize}; use quantizer: edgekit"
        return None

    def cannot_express(self, quant: QuantSpec) -> str | None:
        if quant.quantizer is Quantizer.NEURAL_COMPRESSOR:
            return (
                "coreml: int8 is built from edgekit's encodings only; lowering neural-compressor's PT2E program "
                "to Core ML is not implemented (use quantizer: edgekit for coreml)"
            )
        return None

    def io_spec(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        return ids_as_int32(inputs)

    def compile(self, ctx: CompileContext, precision: Precision, options: dict[str, Any], out: Path) -> Artifact:
        self.require()
        import coremltools as ct

        mode = str(options.get("int8_mode", "w8a8"))
        if mode not in ("w8a8", "weights", "palettize"):
            raise RecipeError(f"coreml: int8_mode must be w8a8, weights or palettize, not '{mode}'")
        art = Artifact(
            self.name, precision, out, self.runtime, "model.mlpackage", options={k: options[k] for k in options}
        )
        source = ctx.model
        if precision is Precision.INT8 and mode == "w8a8":
            if ctx.sim is None:
                raise CalibrationError("coreml w8a8 needs calibration: set quantization.calibration")
            source = decomposed(ctx.sim, style="aten")
        ml = self._convert(ct, source, ctx, precision, options)
        ml = lower_binary_weights(self.name, ctx.model, ml, art)  # +-1 weights as 1-bit palettes
        if precision is Precision.INT8:
            ml = self._int8(ct, ml, mode, options, art)
        self._metadata(ml, ctx, precision)
        ml.save(str(out / art.file))
        if not ON_MACOS:
            art.notes.append(
                f"validated as: CoreML program, reference interpreter (coremltools op value inference), "
                f"first {REFERENCE_SAMPLES} validation samples; prediction and latency need macOS"
            )
        return art

    @staticmethod
    def _convert(
        ct: Any, model: torch.nn.Module, ctx: CompileContext, precision: Precision, options: dict[str, Any]
    ) -> Any:
        sample = ctx.bundle.example_inputs(1, 64)  # a static batch-1 program (sequence 64 for token inputs)
        target_name = str(options.get("minimum_deployment_target", "iOS17"))
        units = str(options.get("compute_units", "ALL"))
        try:
            deployment = getattr(ct.target, target_name)
            compute_units = ct.ComputeUnit[units]
        except (AttributeError, KeyError):
            raise RecipeError(
                f"coreml: unknown minimum_deployment_target '{target_name}' or compute_units '{units}'"
            ) from None
        inputs = [
            ct.TensorType(name=s.name, shape=tuple(x.shape), dtype=np.int32 if s.dtype == "int64" else np.float32)
            for s, x in zip(ctx.bundle.inputs, sample)
        ]
        log = io.StringIO()
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(log),
                contextlib.redirect_stderr(log),
                torch.no_grad(),
            ):
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model.eval(), sample, check_trace=False)
                return ct.convert(
                    traced,
                    inputs=inputs,
                    outputs=[ct.TensorType(name=ctx.bundle.output_name)],
                    convert_to="mlprogram",
                    minimum_deployment_target=deployment,
                    compute_units=compute_units,
                    compute_precision=ct.precision.FLOAT16 if precision is Precision.FP16 else ct.precision.FLOAT32,
                )
        except Exception as exc:
            raise UnsupportedOpError(f"coreml: conversion failed: {_first_line(exc)}") from None

    @staticmethod
    def _int8(ct: Any, ml: Any, mode: str, options: dict[str, Any], art: Artifact) -> Any:
        from coremltools.optimize import coreml as opt

        if mode == "w8a8":
            art.quantizer = "edgekit"
            art.notes.append("W8A8 from edgekit encodings: quantize/dequantize ops and int8 constexpr weights")
            return ml
        art.quantizer = "native"
        threshold = int(options.get("weight_threshold", 2048))  # coremltools' default: smaller tensors stay float
        if mode == "weights":
            cfg = opt.OptimizationConfig(
                global_config=opt.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=threshold)
            )
            art.notes.append("weight-only int8 (coremltools linear_quantize_weights); activations in float")
            return opt.linear_quantize_weights(ml, config=cfg)
        bits = int(options.get("palettize_bits", 4))
        cfg = opt.OptimizationConfig(
            global_config=opt.OpPalettizerConfig(nbits=bits, mode="kmeans", weight_threshold=threshold)
        )
        art.notes.append(f"{bits}-bit palettized weights (k-means lookup table); activations in float")
        return opt.palettize_weights(ml, config=cfg)

    @staticmethod
    def _metadata(ml: Any, ctx: CompileContext, precision: Precision) -> None:
        from .. import __version__

        ml.author = "edgekit"
        ml.version = __version__
        ml.short_description = f"{ctx.bundle.family} {ctx.bundle.task}, {precision.value}, exported by edgekit"
        for s in ctx.bundle.inputs:
            ml.input_description[s.name] = f"{s.name}: shape {list(s.shape)} (batch 1 in this program), {s.dtype}"
        ml.output_description[ctx.bundle.output_name] = f"{ctx.bundle.output_name} ({ctx.bundle.task})"
        ml.user_defined_metadata["edgekit.precision"] = precision.value
        ml.user_defined_metadata["edgekit.family"] = ctx.bundle.family
        if ctx.recipe_yaml:
            ml.user_defined_metadata["edgekit.recipe"] = ctx.recipe_yaml

    def load(self, artifact: Artifact, threads: int = 2) -> Any:
        self.require()
        return CoreMLSession(artifact.path / artifact.file)


class CoreMLSession:
    """``MLModel.predict`` on macOS; the reference interpreter elsewhere. The program has batch 1: loop."""

    def __init__(self, path: Path):
        if ON_MACOS:  # pragma: no cover - needs macOS
            import coremltools as ct

            self._model = ct.models.MLModel(str(path))
            self._one = lambda feeds: next(iter(self._model.predict(feeds).values()))
        else:
            from .coreml_reference import ReferenceProgram

            self._program = ReferenceProgram(path)
            self._one = self._program.run_one

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = len(next(iter(feeds.values())))
        casted = {k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in feeds.items()}
        return np.concatenate(
            [np.asarray(self._one({k: v[i : i + 1] for k, v in casted.items()}), np.float32) for i in range(batch)]
        )


TARGETS.add("coreml", CoreMLTarget())
