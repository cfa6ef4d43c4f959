"""TensorRT: the Q/DQ rules checker, the artifact written without TensorRT, and honest reporting."""

from __future__ import annotations

import json

import onnx

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, ModelSpec, Precision, QuantSpec
from edgekit.targets.base import CompileContext, get_target
from edgekit.targets.pt2e_lowering import qdq_onnx_export
from edgekit.targets.trt_rules import check_tensorrt_qdq

from .conftest import TINY_VIT, write_yaml


def _qdq(tmp_path, symmetric: bool) -> onnx.ModelProto:
    """The Q/DQ ONNX of the tensorrt profile (symmetric), or of the x86 placement with asymmetric activations."""
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    data = load_data(DataSpec("digits", "train", samples=32), bundle)
    profile = "tensorrt" if symmetric else "ort_ov"
    cal = calibrate(bundle.module, ["pixel_values"], data, QuantSpec(activation_symmetric=False), bundle, profile)
    return qdq_onnx_export(cal.sim, bundle, tmp_path / "q.onnx", 18)


def test_symmetric_export_follows_tensorrt_rules(tmp_path):
    assert check_tensorrt_qdq(_qdq(tmp_path, symmetric=True)) == []


def test_checker_flags_asymmetric_activations(tmp_path):
    problems = check_tensorrt_qdq(_qdq(tmp_path, symmetric=False))
    assert problems and all("zero point must be int8 and 0" in p for p in problems)


def test_checker_flags_per_channel_activation_and_wrong_weight_axis(tmp_path):
    model = _qdq(tmp_path, symmetric=True)
    init = {i.name: i for i in model.graph.initializer}
    dq = next(
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in init and len(init[n.input[0]].dims) == 2
    )
    for a in dq.attribute:
        if a.name == "axis":
            a.i = 1 - a.i  # the wrong axis for this weight's consumer
    assert any("not the output-channel axis" in p for p in check_tensorrt_qdq(model))


def test_tensorrt_artifact_without_tensorrt(tmp_path):
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    data = load_data(DataSpec("digits", "train", samples=32), bundle)
    q = QuantSpec()
    cal = calibrate(bundle.module, ["pixel_values"], data, q, bundle, "tensorrt")
    ctx = CompileContext(bundle, bundle.module, cal.sim, cal.encodings, q, data, tmp_path)
    out = tmp_path / "trt"
    out.mkdir()
    art = get_target("tensorrt").export(ctx, Precision.INT8, {}, out)  # export parses the dict options
    script = (out / "build_engine.sh").read_text()
    assert "trtexec --onnx=model.onnx --saveEngine=model.plan --int8 --fp16" in script
    assert "--minShapes=pixel_values:1x1x8x8" in script and "--maxShapes=pixel_values:32x1x8x8" in script
    assert any("not a TensorRT engine" in n for n in art.notes)


def test_target_all_reports_tensorrt_honestly(run_cli, tmp_path, tiny_vit_recipe):
    # asymmetric activations for the other targets; TensorRT's profile keeps its symmetric grid regardless
    tiny_vit_recipe["quantization"]["activation_symmetric"] = False
    tiny_vit_recipe["targets"] = [{"name": "all", "precisions": ["fp32", "int8"]}]
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, out, err = run_cli("run", path, "--out", tmp_path / "out")
    assert code == 0, err
    rows = {
        (r["target"], r["precision"]): r for r in json.loads((tmp_path / "out" / "report.json").read_text())["rows"]
    }
    trt = rows[("tensorrt", "fp32")]
    assert trt["latency"] is None and trt["latency_note"] == "not measured here"
    assert trt["accuracy"]["agreement_vs_fp32"] == 100.0
    assert rows[("tensorrt", "int8")]["profile"] == "tensorrt"
    assert rows[("tensorrt", "int8")]["accuracy"]["agreement_vs_sim"] >= 98.0
    assert rows[("onnx", "int8")]["latency"]["p50_ms"] > 0
    encodings = json.loads((tmp_path / "out" / "encodings.json").read_text())
    trt_keys = encodings["meta"]["profiles"]["tensorrt"]
    activations = [encodings["tensors"][k] for k in trt_keys if not k.split("@")[0].endswith(".weight")]
    assert activations and all(e["signed"] and set(e["zero_point"]) == {0} for e in activations)
    assert any(k.endswith("@tensorrt") for k in trt_keys)  # its own grid where the x86 profiles are asymmetric
    assert "not measured here" in (tmp_path / "out" / "report.md").read_text()


def test_symmetric_activations_as_uint8_are_the_same_values(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from edgekit.targets.onnx_export import activations_as_uint8

    model = _qdq(tmp_path, symmetric=True)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"pixel_values": x})[0]
    assert activations_as_uint8(model) > 0
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"pixel_values": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert check_tensorrt_qdq(model)  # uint8 is for ONNX Runtime only: the TensorRT artifact keeps int8
