"""Target ``onnx``: ONNX (opset 18) run by ONNX Runtime's CPU provider; the reference runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx

from ..errors import CalibrationError
from ..recipe import Estimator, Precision, Quantizer
from .base import TARGETS, Artifact, CompileContext, Target
from .onnx_common import fp32_onnx, qdq_onnx
from .onnx_export import activations_as_uint8, weights_to_fp16
from .pt2e_lowering import source

_ORT_METHODS = {Estimator.MINMAX: "MinMax", Estimator.ENTROPY: "Entropy", Estimator.PERCENTILE: "Percentile"}


class OnnxRuntimeTarget(Target):
    name = "onnx"
    runtime = "onnxruntime"
    module = "onnxruntime"
    extra = "onnx"  # core dependency; kept for the message format

    def compile(self, ctx: CompileContext, precision: Precision, options: dict[str, Any], out: Path) -> Artifact:
        self.require()
        art = Artifact(self.name, precision, out, self.runtime, "model.onnx")
        dest = out / art.file
        if precision is Precision.FP32:
            shutil.copyfile(fp32_onnx(ctx), dest)
        elif precision is Precision.FP16:
            onnx.save(weights_to_fp16(onnx.load(str(fp32_onnx(ctx)))), str(dest))
            art.notes.append("fp16 weights, fp32 compute (ONNX Runtime CPU has no fp16 kernels for most ops)")
        elif ctx.quant.quantizer is Quantizer.NATIVE:
            self._native_int8(ctx, dest)
            art.quantizer = "native"
            art.notes.append("ONNX Runtime quantize_static (QDQ, its own calibration)")
        else:
            model = onnx.load(str(qdq_onnx(ctx)))
            if activations_as_uint8(model):
                art.notes.append(
                    "symmetric int8 activations stored as uint8, zero point 128: same values, "
                    "ONNX Runtime's fast uint8 x int8 kernels"
                )
            onnx.save(model, str(dest))
            art.quantizer = ctx.quant.quantizer.value
            art.notes.append(f"explicit Q/DQ from {source(ctx.quant)}")
        return art

    def _native_int8(self, ctx: CompileContext, dest: Path) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            quantize_static,
        )

        if ctx.calib is None:
            raise CalibrationError("native int8 needs calibration data: set quantization.calibration")
        method = _ORT_METHODS.get(ctx.quant.estimator)
        if method is None:
            raise CalibrationError(
                f"ONNX Runtime's quantizer has no '{ctx.quant.estimator.value}' estimator; "
                "use minmax, entropy or percentile with --quantizer native"
            )
        calib = ctx.calib

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(calib.batches(1))

            def get_next(self):  # type: ignore[override]
                nxt = next(self._it, None)
                return None if nxt is None else nxt[0]

        quantize_static(
            str(fp32_onnx(ctx)),
            str(dest),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=ctx.quant.per_channel,
            calibrate_method=getattr(CalibrationMethod, method),
        )


TARGETS.add("onnx", OnnxRuntimeTarget())
