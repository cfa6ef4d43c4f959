"""Target ``coreml``: a Core ML ML Program (.mlpackage) converted with coremltools 9.

* fp32 / fp16: ``compute_precision`` FLOAT32 / FLOAT16.
* int8, ``options.int8_mode``:
  ``w8a8`` (default): the quantized program (profile full_integer) as quantize/dequantize ops, int8 constexpr weights;
  ``weights``: weight-only linear int8 (coremltools ``linear_quantize_weights``);
  ``palettize``: weight palettization with ``palettize_bits`` (a 2^n-entry lookup table per tensor, k-means).
  Both skip tensors smaller than ``weight_threshold`` elements (default 2048, as coremltools).
* Options: ``minimum_deployment_target`` (default iOS17: activation quantize ops need it; iOS18 when enumerated
  flexible shapes are on several inputs), ``compute_units`` (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE),
  ``flexible_shapes`` (``{batch: "1..8", sequence: "16..128"}`` ranges or ``{batch: [1, 4], sequence: [32, 64]}``
  enumerated sizes; see ``coreml_shapes``; default: fixed batch 1 and the calibration data's sequence length,
  else 64). Metadata (author, version, IO descriptions, recipe) is embedded.
* Conversion: from ``torch.export`` (``coreml_export``: HF attention masks, symbolic batch/sequence); a fixed-shape
  program falls back to a TorchScript trace only when that fails, and the artifact's notes say why. When both
  fail, the row is ``unsupported`` with coremltools' own reason (e.g. Hiera: "Core ML only supports tensors with
  rank <= 5").

Prediction needs macOS. Elsewhere the program is executed by edgekit's reference interpreter built on
coremltools' op value inference (labelled so in the report, on a capped number of samples) and latency is
"not measured here".
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import to_dict
from ..device import runner
from ..errors import CalibrationError, RecipeError, UnsupportedOpError, first_line_or_type
from ..recipe import Precision, Quantizer, QuantSpec, TensorSpec
from .base import STATIC_SEQUENCE, TARGETS, Artifact, CompileContext, Target, ids_as_int32
from .binary_lowering import MIN_ELEMENTS, is_sign_tensor, lower_binary_weights, record
from .coreml_export import export_program
from .coreml_shapes import FlexibleShapes, coreml_inputs, dynamic_shapes
from .pt2e_lowering import source as quant_source
from .pt2e_lowering import weights_folded

ON_MACOS = sys.platform == "darwin"
REFERENCE_SAMPLES = 1000
INT8_MODES = ("w8a8", "weights", "palettize")
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")  # coremltools' ComputeUnit names
PALETTIZE_BITS = (1, 2, 3, 4, 6, 8)  # what coremltools' OpPalettizerConfig takes


@dataclass(frozen=True)
class CoreMLOptions:
    """The ``coreml`` target's options (see the module docstring). ``minimum_deployment_target`` None: iOS17, or
    iOS18 when enumerated flexible shapes are on several inputs (a name of ``coremltools.target``, checked at
    conversion). ``flexible_shapes`` stays the recipe's mapping (artifact.json records it so; ``load`` reads it
    back) and is checked here by ``FlexibleShapes.parse``."""

    minimum_deployment_target: str | None = None
    compute_units: str = "ALL"
    int8_mode: str = "w8a8"
    palettize_bits: int = 4
    weight_threshold: int = 2048  # coremltools' default: smaller tensors stay float
    flexible_shapes: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.int8_mode not in INT8_MODES:
            raise ValueError(f"int8_mode must be w8a8, weights or palettize, not '{self.int8_mode}'")
        if self.compute_units not in COMPUTE_UNITS:
            raise ValueError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, not '{self.compute_units}'")
        if self.palettize_bits not in PALETTIZE_BITS:
            raise ValueError(f"palettize_bits must be one of {PALETTIZE_BITS}, not {self.palettize_bits}")
        if self.weight_threshold < 0:
            raise ValueError(f"weight_threshold must be >= 0, got {self.weight_threshold}")
        try:
            FlexibleShapes.parse(self.flexible_shapes)
        except RecipeError as exc:  # from_dict prefixes "target coreml: options: "
            raise ValueError(str(exc).removeprefix("coreml: ")) from None

    def recorded(self) -> dict[str, Any]:
        """What artifact.json records under ``options``: the options the recipe set (those off their defaults)."""
        default = CoreMLOptions()
        return {
            f.name: to_dict(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


class CoreMLTarget(Target):
    name = "coreml"
    quant_profile = "full_integer"
    runtime = "coreml"
    module = "coremltools"
    extra = "coreml"
    options = CoreMLOptions
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
                "coreml: lowering neural-compressor's x86 program is not implemented: its int8 layers leave "
                "their outputs float (use quantizer: edgekit for coreml)"
            )
        return None

    def io_spec(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        return ids_as_int32(inputs)

    def compile(self, ctx: CompileContext, precision: Precision, options: CoreMLOptions, out: Path) -> Artifact:
        self.require()
        import coremltools as ct

        mode = options.int8_mode
        flex = FlexibleShapes.parse(options.flexible_shapes)
        art = Artifact(self.name, precision, out, self.runtime, "model.mlpackage", options=options.recorded())
        w8a8 = precision is Precision.INT8 and mode == "w8a8"
        if w8a8 and ctx.sim is None:
            raise CalibrationError("coreml w8a8 needs calibration: set quantization.calibration")
        ml = self._convert(ct, ctx, precision, options, flex, w8a8, art)
        ml = lower_binary_weights(self, ctx.model, ml, art)  # +-1 weights as 1-bit palettes
        if precision is Precision.INT8:
            ml = self._int8(ct, ml, mode, options, art, ctx.quant.quantizer.value, quant_source(ctx.quant))
        self._metadata(ml, ctx, precision, flex)
        ml.save(str(out / art.file))
        if not ON_MACOS:
            art.notes.append(
                f"validated as: CoreML program, reference interpreter (coremltools op value inference), "
                f"first {REFERENCE_SAMPLES} validation samples; prediction and latency need macOS"
            )
        return art

    def _convert(
        self,
        ct: Any,
        ctx: CompileContext,
        precision: Precision,
        options: CoreMLOptions,
        flex: FlexibleShapes | None,
        w8a8: bool,
        art: Artifact,
    ) -> Any:
        """torch.export first; the TorchScript trace only for fixed shapes when export conversion fails."""
        # Core ML takes enumerated shapes on more than one input from iOS18 on
        several = flex is not None and bool(flex.enumerated) and len(ctx.bundle.inputs) > 1
        target_name = options.minimum_deployment_target or ("iOS18" if several else "iOS17")
        if several and target_name in ("iOS15", "iOS16", "iOS17", "macOS12", "macOS13", "macOS14"):
            raise RecipeError(
                f"coreml: enumerated flexible_shapes on {len(ctx.bundle.inputs)} inputs need "
                f"minimum_deployment_target iOS18 (not {target_name}); or use ranges 'LO..HI'"
            )
        units = options.compute_units
        try:
            settings = {
                "convert_to": "mlprogram",
                "minimum_deployment_target": getattr(ct.target, target_name),
                "compute_units": ct.ComputeUnit[units],
                "compute_precision": ct.precision.FLOAT16 if precision is Precision.FP16 else ct.precision.FLOAT32,
                "outputs": [ct.TensorType(name=ctx.bundle.output_name)],
            }
        except (AttributeError, KeyError):
            raise RecipeError(
                f"coreml: unknown minimum_deployment_target '{target_name}' or compute_units '{units}'"
            ) from None
        specs = ctx.bundle.inputs
        sample = _sample(ctx, flex)
        try:
            model = weights_folded(ctx.sim) if w8a8 else ctx.model  # int8 weights: constexpr ops in Core ML
            program = export_program(model, sample, None if flex is None else dynamic_shapes(specs, flex))
            ml = _quiet(lambda: ct.convert(program, inputs=coreml_inputs(ct, specs, sample, flex), **settings))
            art.notes.append("converted from torch.export" + (f"; flexible shapes: {flex.describe()}" if flex else ""))
            return ml
        except RecipeError:
            raise
        except Exception as exc:
            reason = first_line_or_type(exc)
        if flex is not None:
            raise UnsupportedOpError(f"coreml: torch.export conversion failed (flexible shapes need it): {reason}")
        if w8a8:  # the int8 program is a torch.export program: there is no module form to trace
            raise UnsupportedOpError(f"coreml: torch.export conversion of the int8 program failed: {reason}")
        try:
            model = ctx.model
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = _quiet(lambda: torch.jit.trace(model.eval(), sample, check_trace=False))
            ml = _quiet(lambda: ct.convert(traced, inputs=coreml_inputs(ct, specs, sample, None), **settings))
        except Exception:
            raise UnsupportedOpError(f"coreml: conversion failed: {reason}") from None
        art.notes.append(f"converted from a TorchScript trace (torch.export conversion failed: {reason})")
        return ml

    @staticmethod
    def _int8(ct: Any, ml: Any, mode: str, options: CoreMLOptions, art: Artifact, quantizer: str, source: str) -> Any:
        from coremltools.optimize import coreml as opt

        if mode == "w8a8":
            art.quantizer = quantizer
            art.notes.append(f"W8A8 from {source}: quantize/dequantize ops and int8 constexpr weights")
            return ml
        art.quantizer = "native"
        threshold = options.weight_threshold
        if mode == "weights":
            cfg = opt.OptimizationConfig(
                global_config=opt.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=threshold)
            )
            art.notes.append("weight-only int8 (coremltools linear_quantize_weights); activations in float")
            return opt.linear_quantize_weights(ml, config=cfg)
        bits = options.palettize_bits
        cfg = opt.OptimizationConfig(
            global_config=opt.OpPalettizerConfig(nbits=bits, mode="kmeans", weight_threshold=threshold)
        )
        art.notes.append(f"{bits}-bit palettized weights (k-means lookup table); activations in float")
        return opt.palettize_weights(ml, config=cfg)

    @staticmethod
    def _metadata(ml: Any, ctx: CompileContext, precision: Precision, flex: FlexibleShapes | None) -> None:
        from ..version import __version__

        ml.author = "edgekit"
        ml.version = __version__
        ml.short_description = f"{ctx.bundle.family} {ctx.bundle.task}, {precision.value}, exported by edgekit"
        for s in ctx.bundle.inputs:
            shapes = f"flexible: {flex.describe()}" if flex else "batch 1 in this program"
            ml.input_description[s.name] = f"{s.name}: shape {list(s.shape)} ({shapes}), {s.dtype}"
        ml.output_description[ctx.bundle.output_name] = f"{ctx.bundle.output_name} ({ctx.bundle.task})"
        ml.user_defined_metadata["edgekit.precision"] = precision.value
        ml.user_defined_metadata["edgekit.family"] = ctx.bundle.family
        if ctx.recipe_yaml:
            ml.user_defined_metadata["edgekit.recipe"] = ctx.recipe_yaml

    def lower_binary(self, program: Any, expected: int, art: Artifact) -> Any:
        """+-1 weights as 1-bit palettes: ``constexpr_lut_to_dense`` with the lookup table {-1, +1}."""
        from coremltools.optimize import coreml as opt

        names = _sign_consts(program)
        if names:
            palette = opt.OpPalettizerConfig(mode="unique", granularity="per_tensor", weight_threshold=MIN_ELEMENTS)
            config = opt.OptimizationConfig(op_name_configs=dict.fromkeys(names, palette))
            program = opt.palettize_weights(program, config=config)
        record(art, expected, len(names), "1-bit palettes (lookup table {-1, +1}, constexpr_lut_to_dense)")
        return program

    def load(self, artifact: Artifact, threads: int = 2) -> Any:
        """The device runner's Core ML session with the program's allowed batch sizes; off macOS it predicts with
        the reference interpreter. Errors are the runtime's own (not wrapped as the other targets' are)."""
        self.require()
        flex = FlexibleShapes.parse(artifact.options.get("flexible_shapes"))
        predict = None
        if not ON_MACOS:
            from .coreml_reference import ReferenceProgram

            predict = ReferenceProgram(artifact.path / artifact.file).run_one
        meta = runner.read_meta(artifact.path)
        return runner.CoreMLSession(artifact.path, meta, threads, {}, batches=_batch_sizes(flex), predict=predict)


def _sign_consts(ml: Any) -> list[str]:
    """Names of the program's constants that hold only +-1 (at least MIN_ELEMENTS of them).

    Walks the MIL program itself: coremltools' get_weights_metadata fails on a constant that feeds an op with a
    tuple input (a ViT's position embedding into concat: "'list' object has no attribute 'val'")."""
    names: list[str] = []

    def walk(block: Any) -> None:
        for op in block.operations:
            for inner in op.blocks:
                walk(inner)
            value = op.val.val if op.op_type == "const" and op.val is not None else None
            if isinstance(value, np.ndarray) and value.size >= MIN_ELEMENTS and is_sign_tensor(value):
                names.append(op.name)

    for function in ml._mil_program.functions.values():  # the program ct.convert just built
        walk(function)
    return names


def _batch_sizes(flex: FlexibleShapes | None) -> tuple[int, ...]:
    if flex is None or flex.sizes("batch") is None:
        return (1,)
    if "batch" in flex.enumerated:
        return flex.enumerated["batch"]
    lo, hi = flex.ranges["batch"]
    return tuple(range(lo, min(hi, 64) + 1))  # chunks of at most 64 rows


def _sample(ctx: CompileContext, flex: FlexibleShapes | None) -> tuple[torch.Tensor, ...]:
    """Export inputs: batch 1 at the calibration data's sequence length (else 64) for a fixed program; sizes
    inside the allowed ranges for flexible dimensions."""
    sequence = STATIC_SEQUENCE
    if ctx.calib is not None:
        for s in ctx.bundle.inputs:
            if "sequence" in s.shape:
                sequence = int(ctx.calib.inputs[s.name].shape[list(s.shape).index("sequence")])
                break
    if flex is None:
        sample = ctx.bundle.example_inputs(1, sequence)
    else:
        sample = ctx.bundle.example_inputs(flex.export_size("batch", 1), flex.export_size("sequence", sequence))
    return tuple(_padded_mask(x) if s.name == "attention_mask" else x for s, x in zip(ctx.bundle.inputs, sample))


def _padded_mask(mask: torch.Tensor) -> torch.Tensor:
    """An attention mask with the last position padded. HF mask code skips the mask when it is all ones, and
    export records the branch it took: an all-ones example would give a program that ignores padding."""
    if mask.shape[-1] < 2:
        return mask
    mask = mask.clone()
    mask[..., -1] = 0
    return mask


def _quiet(fn: Callable[[], Any]) -> Any:
    """coremltools and torch print progress bars and warnings to stdout/stderr: keep them out of the run."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        return fn()


TARGETS.add("coreml", CoreMLTarget())
