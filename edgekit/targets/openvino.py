"""Target ``openvino``: OpenVINO IR (model.xml + model.bin) on the CPU plugin.

The CPU plugin defaults to bf16 inference on CPUs with AVX-512 BF16/AMX; edgekit always sets the inference
precision hint explicitly (``options.inference_precision``, default f32) and reports what the plugin used.
INT8 from edgekit's encodings: the Q/DQ ONNX is read as FakeQuantize ops. Native: NNCF post-training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CalibrationError, UnsupportedOpError, first_line_or_type
from ..recipe import Precision, Quantizer
from .base import TARGETS, Artifact, CompileContext, Target
from .binary_lowering import lower_binary_weights
from .onnx_common import fp32_onnx, qdq_onnx
from .pt2e_lowering import source


def conversion_reason(exc: Exception) -> str:
    """One line saying which op failed and why: OpenVINO's message starts with a C++ source location ("Check
    'false' failed at src/frontends/...cpp:151:"); the failed operation ("-- OP with a message:") and its reason
    follow, before a "Summary:"."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("-- ")), None)
    if first is None:
        return first_line_or_type(exc)
    op = lines[first].removeprefix("-- ").removesuffix(" with a message:")
    detail = [ln for ln in lines[first + 1 :] if not ln.startswith("--")]
    detail = detail[: detail.index("Summary:")] if "Summary:" in detail else detail
    plain = [ln for ln in detail if not ln.startswith(("While validating", "[ONNX Frontend]"))]
    why = (plain or detail or [""])[-1]
    return f"{op}: {why}"[:400] if why else op


def _cpu_supports_f16() -> bool:
    import openvino as ov

    return "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVINOTarget(Target):
    name = "openvino"
    quant_profile = "openvino"
    runtime = "openvino"
    module = "openvino"
    extra = "openvino"
    option_keys = ("inference_precision",)

    def compile(self, ctx: CompileContext, precision: Precision, options: dict[str, Any], out: Path) -> Artifact:
        self.require()
        import openvino as ov

        hint = str(options.get("inference_precision", "f32"))
        art = Artifact(self.name, precision, out, self.runtime, "model.xml", options={"inference_precision": hint})
        try:
            if precision is Precision.INT8 and ctx.quant.quantizer is Quantizer.NATIVE:
                model = self._nncf_int8(ctx)
                art.quantizer = "native"
                art.notes.append("NNCF post-training quantization (its own calibration)")
            elif precision is Precision.INT8:
                model = ov.convert_model(str(qdq_onnx(ctx)))
                art.quantizer = ctx.quant.quantizer.value
                art.notes.append(f"{source(ctx.quant)} as FakeQuantize (read from its Q/DQ ONNX)")
            else:
                model = ov.convert_model(str(fp32_onnx(ctx)))
        except CalibrationError:
            raise
        except Exception as exc:
            raise UnsupportedOpError(f"openvino: conversion failed: {conversion_reason(exc)}") from None
        model = lower_binary_weights(self.name, ctx.model, model, art)  # +-1 weights: u1 + FakeQuantize(levels=2)
        fp16 = precision is Precision.FP16
        if fp16:
            if "inference_precision" not in options:
                hint = "f16" if _cpu_supports_f16() else "f32"
                art.options["inference_precision"] = hint
            if hint != "f16":
                art.notes.append(f"fp16 weights; this CPU computes in {hint}")
        ov.save_model(model, str(out / art.file), compress_to_fp16=fp16)
        art.notes.append(f"inference precision hint {hint}")
        return art

    def _nncf_int8(self, ctx: CompileContext):
        import nncf
        import openvino as ov

        if ctx.calib is None:
            raise CalibrationError("native int8 needs calibration data: set quantization.calibration")
        model = ov.convert_model(str(fp32_onnx(ctx)))
        names = [s.name for s in ctx.bundle.inputs]
        items = [feeds for feeds, _ in ctx.calib.batches(1)]
        kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if ctx.bundle.is_transformer else {}
        dataset = nncf.Dataset(items, lambda f: {n: f[n] for n in names})
        return nncf.quantize(model, dataset, subset_size=len(items), **kwargs)


TARGETS.add("openvino", OpenVINOTarget())
