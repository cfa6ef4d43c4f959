"""One template test body, run against every target: parity, int8 vs its profile's program, IO spec, reload."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.metrics import agreement, cosine
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, ModelSpec, Precision, QuantSpec
from edgekit.targets.base import Artifact, CompileContext, all_targets, get_target
from edgekit.targets.onnx_export import op_counts

from .conftest import TINY_VIT

TARGETS = [t.name for t in all_targets()]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """The FP32 context; ``ctx.cache["int8"]`` holds one INT8 context per quantization profile, made on first use."""
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    calib = load_data(DataSpec("digits", "train", samples=128), bundle)
    q = QuantSpec(calibration=DataSpec("digits"))
    work = tmp_path_factory.mktemp("work")
    return CompileContext(bundle, bundle.module, None, None, q, calib, work)


def int8_context(ctx: CompileContext, target: str) -> CompileContext:
    """The context of ``target``'s profile: the program it lowers and is compared with (one per profile)."""
    profile = get_target(target).quant_profile
    made = ctx.cache.setdefault("int8", {})
    if profile not in made:
        cal = calibrate(ctx.model, ["pixel_values"], ctx.calib, ctx.quant, ctx.bundle, profile)
        work = ctx.workdir / profile
        work.mkdir()
        made[profile] = dataclasses.replace(ctx, sim=cal.sim, encodings=cal.encodings, workdir=work, cache={})
    return made[profile]


@pytest.fixture(scope="module")
def val(ctx):
    return load_data(DataSpec("digits", "test", samples=200), ctx.bundle)


def _compile(ctx, target, precision, tmp_path):
    t = get_target(target)
    ok, why = t.available()
    if not ok:
        pytest.skip(f"{target}: {why}")
    out = tmp_path / f"{target}-{precision.value}"
    out.mkdir()
    t.export(ctx, precision, {}, out)
    return t, Artifact.read(out)  # reload from disk: the artifact directory is self-describing


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_declares_frozen_typed_options(target):
    cls = get_target(target).options
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert get_target(target).parse_options(None) == cls()  # no options: the target's defaults


def test_options_parse_from_a_mapping_and_a_typed_object_passes_through():
    t = get_target("onnx")
    typed = t.parse_options({"op_types": "MatMul,Conv"})
    assert typed.op_types == ("MatMul", "Conv") and t.parse_options(typed) is typed


@pytest.mark.parametrize("target", TARGETS)
def test_fp32_parity_with_pytorch(ctx, val, target, tmp_path):
    t, art = _compile(ctx, target, Precision.FP32, tmp_path)
    x = val.inputs["pixel_values"]
    out = t.run(t.load(art), {"pixel_values": x})
    ref = ctx.model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("target", TARGETS)
def test_int8_agrees_with_its_profiles_program(ctx, val, target, tmp_path):
    own = int8_context(ctx, target)
    t, art = _compile(own, target, Precision.INT8, tmp_path)
    assert art.quantizer == "edgekit"
    x = val.inputs["pixel_values"]
    out = t.run(t.load(art), {"pixel_values": x})
    sim = own.sim(torch.from_numpy(x)).detach().numpy()
    assert agreement(out, sim) >= 98.0
    assert cosine(out, sim) > 0.999


@pytest.mark.parametrize("target", TARGETS)
def test_io_names_shapes_dtypes_as_declared(ctx, val, target, tmp_path):
    t, art = _compile(ctx, target, Precision.FP32, tmp_path)
    session = t.load(art)
    for batch in (1, 3):  # the batch axis is dynamic
        out = t.run(session, {"pixel_values": val.inputs["pixel_values"][:batch]})
        assert out.shape == (batch, 10) and out.dtype == np.float32


@pytest.mark.parametrize("target", TARGETS)
def test_fp16_is_close(ctx, val, target, tmp_path):
    t, art = _compile(ctx, target, Precision.FP16, tmp_path)
    x = val.inputs["pixel_values"]
    ref = ctx.model(torch.from_numpy(x)).detach().numpy()
    assert cosine(t.run(t.load(art), {"pixel_values": x}), ref) > 0.999


def test_qdq_graph_structure(ctx, tmp_path):
    own = int8_context(ctx, "onnx")
    _, art = _compile(own, "onnx", Precision.INT8, tmp_path)
    model = onnx.load(str(art.path / art.file))
    counts = op_counts(model)
    n_layers = sum(k.endswith(".weight") for k in own.encodings.tensors)
    # Weights are stored as int8 with only a DequantizeLinear; activations keep a Q/DQ pair.
    int8_inits = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_inits) == n_layers
    assert counts["DequantizeLinear"] >= n_layers + counts["QuantizeLinear"]
    assert counts["QuantizeLinear"] >= 1
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    int8_names = {i.name for i in int8_inits}
    weight_dq = {o for o, n in dq.items() if n.input[0] in int8_names}
    quantized_ops = [
        n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv") and any(i in weight_dq for i in n.input)
    ]
    assert len(quantized_ops) == n_layers
    for node in quantized_ops:  # both the activation and the weight of every quantized op come from a DQ
        assert node.input[0] in dq and node.input[1] in dq, node.name
