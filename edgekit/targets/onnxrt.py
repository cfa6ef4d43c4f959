"""Target ``onnx``: ONNX (opset 18) run by ONNX Runtime's CPU provider; the reference runtime."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import CalibrationError
from ..recipe import Estimator, Precision, Quantizer
from .base import TARGETS, Artifact, CompileContext, Target
from .onnx_common import fp32_onnx, qdq_onnx
from .onnx_export import activations_as_uint8, weights_to_fp16
from .pt2e_lowering import source

_ORT_METHODS = {Estimator.MINMAX: "MinMax", Estimator.ENTROPY: "Entropy", Estimator.PERCENTILE: "Percentile"}


@dataclass(frozen=True)
class OnnxOptions:
    """``op_types`` (quantizer native): the ``op_types_to_quantize`` of ``quantize_static``, a list of ONNX op
    types (MatMul, Conv, Gemm) or one comma-separated string; default (None): every op type it knows."""

    op_types: tuple[str, ...] | str | None = None

    def __post_init__(self) -> None:
        value = self.op_types
        if isinstance(value, str):
            value = tuple(v for v in value.split(",") if v)
            object.__setattr__(self, "op_types", value)
        if value is not None and (not value or not all(value)):
            raise ValueError(f"op_types must be a list of ONNX op types (MatMul, Conv, Gemm), not {list(value)!r}")


class OnnxRuntimeTarget(Target):
    name = "onnx"
    quant_profile = "onnxruntime"
    runtime = "onnxruntime"
    module = "onnxruntime"
    options = OnnxOptions
    extra = "onnx"  # core dependency; kept for the message format
    exposes_layer_outputs = True

    def compile(self, ctx: CompileContext, precision: Precision, options: OnnxOptions, out: Path) -> Artifact:
        self.require()
        art = Artifact(self.name, precision, out, self.runtime, "model.onnx")
        dest = out / art.file
        if precision is Precision.FP32:
            shutil.copyfile(fp32_onnx(ctx), dest)
        elif precision is Precision.FP16:
            onnx.save(weights_to_fp16(onnx.load(str(fp32_onnx(ctx)))), str(dest))
            art.notes.append("fp16 weights, fp32 compute (ONNX Runtime CPU has no fp16 kernels for most ops)")
        elif ctx.quant.quantizer is Quantizer.NATIVE:
            op_types = None if options.op_types is None else list(options.op_types)
            self._native_int8(ctx, dest, op_types)
            art.quantizer = "native"
            only = f", only {'/'.join(op_types)}" if op_types else ""
            scheme = "per-channel" if ctx.quant.per_channel else "per-tensor"
            art.notes.append(f"ONNX Runtime quantize_static (QDQ, {scheme} weights{only}, its own calibration)")
            if op_types:
                art.options["op_types"] = op_types
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

    def layer_outputs(
        self, path: Path, meta: dict[str, Any], tensors: list[str], feeds: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The named tensors as extra graph outputs, from one ONNX Runtime session on the CPU."""
        import onnxruntime as ort

        model = onnx.load(str(path / meta["file"]))
        g = model.graph
        have = {o.name for o in g.output}
        produced = {o for n in g.node for o in n.output} | have
        found = [t for t in tensors if t in produced]
        for t in found:
            if t not in have:
                g.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        declared = {i.name: i.type for i in sess.get_inputs()}
        feed = {k: v.astype(np.int32) if declared.get(k) == "tensor(int32)" else v for k, v in feeds.items()}
        values = dict(zip(found, sess.run(found, feed)))
        return {t: np.asarray(values[t], dtype=np.float32) for t in found}

    def _native_int8(self, ctx: CompileContext, dest: Path, op_types: list[str] | None = None) -> None:
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
            op_types_to_quantize=op_types,
        )


TARGETS.add("onnx", OnnxRuntimeTarget())
