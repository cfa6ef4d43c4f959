"""ONNX files shared between targets: exported once per run, reused by onnx, openvino (and tensorrt)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CalibrationError
from .base import CompileContext
from .onnx_export import export_onnx
from .pt2e_lowering import qdq_onnx_export


def fp32_onnx(ctx: CompileContext) -> Path:
    """The FP32 ONNX export of the (transformed) model."""
    if "onnx_fp32" not in ctx.cache:
        path = ctx.workdir / "export_fp32.onnx"
        export_onnx(ctx.model, ctx.bundle, path, ctx.opset)
        ctx.cache["onnx_fp32"] = path
    return ctx.cache["onnx_fp32"]


def qdq_onnx(ctx: CompileContext) -> Path:
    """The explicit Q/DQ INT8 ONNX export of the simulated model: edgekit's encodings or a quantizer's PT2E program."""
    if ctx.sim is None:
        raise CalibrationError("int8 with edgekit's encodings needs calibration: set quantization.calibration")
    if "onnx_qdq" not in ctx.cache:
        path = ctx.workdir / "export_int8_qdq.onnx"
        qdq_onnx_export(ctx.sim, ctx.bundle, path, ctx.opset)
        ctx.cache["onnx_qdq"] = path
    return ctx.cache["onnx_qdq"]
