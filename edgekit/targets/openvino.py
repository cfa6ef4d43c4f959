"""Target ``openvino``: OpenVINO IR (model.xml + model.bin) on the CPU plugin.

The CPU plugin defaults to bf16 inference on CPUs with AVX-512 BF16/AMX; edgekit always sets the inference
precision hint explicitly (``options.inference_precision``, default f32) and reports what the plugin used.
INT8 from edgekit's encodings: the Q/DQ ONNX is read as FakeQuantize ops. Native: NNCF post-training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError, UnsupportedOpError, first_line_or_type
from ..recipe import Precision, Quantizer
from .base import TARGETS, Artifact, CompileContext, Target
from .binary_lowering import is_sign_tensor, lower_binary_weights, record
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


@dataclass(frozen=True)
class OpenVINOOptions:
    """``inference_precision``: the CPU plugin's INFERENCE_PRECISION_HINT (f32, f16, bf16). Unset (None): f32, and
    for fp16 artifacts f16 where the CPU computes in it."""

    inference_precision: str | None = None


class OpenVINOTarget(Target):
    name = "openvino"
    quant_profile = "openvino"
    runtime = "openvino"
    module = "openvino"
    extra = "openvino"
    options = OpenVINOOptions
    exposes_layer_outputs = True

    def compile(self, ctx: CompileContext, precision: Precision, options: OpenVINOOptions, out: Path) -> Artifact:
        self.require()
        import openvino as ov

        hint = options.inference_precision or "f32"
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
        model = lower_binary_weights(self, ctx.model, model, art)  # +-1 weights: u1 + FakeQuantize(levels=2)
        fp16 = precision is Precision.FP16
        if fp16:
            if options.inference_precision is None:
                hint = "f16" if _cpu_supports_f16() else "f32"
                art.options["inference_precision"] = hint
            if hint != "f16":
                art.notes.append(f"fp16 weights; this CPU computes in {hint}")
        ov.save_model(model, str(out / art.file), compress_to_fp16=fp16)
        art.notes.append(f"inference precision hint {hint}")
        return art

    def lower_binary(self, program: Any, expected: int, art: Artifact) -> Any:
        """+-1 weights as ``u1`` constants (bit-packed) -> Convert -> ``FakeQuantize(levels=2)`` mapping {0, 1} to
        {-1, +1}: OpenVINO's representation of binary weights."""
        import openvino as ov
        from openvino import opset13 as ops

        lowered = 0
        for node in list(program.get_ordered_ops()):
            if node.get_type_name() != "Constant" or node.get_element_type() != ov.Type.f32:
                continue
            value = node.get_data()
            if not is_sign_tensor(value):
                continue
            bits = ov.Tensor(ov.Type.u1, ov.Shape(list(value.shape)))
            packed = np.packbits(value.reshape(-1) > 0)  # MSB first, as OpenVINO's u1 layout
            bits.data.view(np.uint8).reshape(-1)[: packed.size] = packed
            signs = ops.fake_quantize(
                ops.convert(ops.constant(bits), ov.Type.f32),
                ops.constant(np.float32(0.0)),
                ops.constant(np.float32(1.0)),
                ops.constant(np.float32(-1.0)),
                ops.constant(np.float32(1.0)),
                2,
            )
            signs.set_friendly_name(f"{node.get_friendly_name()}/binary")
            for target in list(node.output(0).get_target_inputs()):
                target.replace_source_output(signs.output(0))
            lowered += 1
        program.validate_nodes_and_infer_types()
        record(art, expected, lowered, "u1 constants read through FakeQuantize(levels=2)")
        return program

    def layer_outputs(
        self, path: Path, meta: dict[str, Any], tensors: list[str], feeds: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The named tensors from one compiled model with extra outputs; if those change the model's own output (the
        CPU plugin compiles a probed graph differently, e.g. a bias-less int8 conv made a result), one compile per
        tensor instead, each checked the same way."""
        import openvino as ov

        core = ov.Core()
        hint = (meta.get("options") or {}).get("inference_precision", "f32")
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2}
        base = np.asarray(core.compile_model(str(path / meta["file"]), "CPU", config)(feeds)[0], dtype=np.float32)

        def ports(model: Any) -> dict[str, Any]:
            return {name: out for op in model.get_ordered_ops() for out in op.outputs() for name in out.get_names()}

        found = [t for t in tensors if t in ports(core.read_model(str(path / meta["file"])))]

        def probe(wanted: list[str]) -> dict[str, np.ndarray] | None:
            m = core.read_model(str(path / meta["file"]))
            by_name = ports(m)
            names = []
            for k, t in enumerate(wanted):  # a unique tensor name per probe, to find it in the compiled model
                by_name[t].get_tensor().add_names({f"edgekit_probe_{k}"})
                names.append(f"edgekit_probe_{k}")
            m.add_outputs(names)
            compiled = core.compile_model(m, "CPU", config)
            result = compiled(feeds)
            if not np.allclose(np.asarray(result[0], dtype=np.float32), base, rtol=1e-4, atol=1e-5):
                return None
            return {t: np.asarray(result[compiled.output(n)], dtype=np.float32) for t, n in zip(wanted, names)}

        values = probe(found)
        if values is None:
            values = {}
            for t in found:
                values.update(probe([t]) or {})
        return values

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
