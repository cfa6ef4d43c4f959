"""CoreML specifics: W8A8 program structure, weight-only and palettized modes, metadata, reference execution."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.metrics import cosine
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, ModelSpec, Precision, QuantSpec
from edgekit.targets.base import Artifact, CompileContext, get_target

from .conftest import TINY_VIT

pytest.importorskip("coremltools", reason="coreml extra not installed (pip install 'edgekit[coreml]')")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    calib = load_data(DataSpec("digits", "train", samples=64), bundle)
    q = QuantSpec()
    cal = calibrate(bundle.module, ["pixel_values"], calib, q, bundle, "full_integer")  # coreml's profile
    return CompileContext(
        bundle,
        bundle.module,
        cal.sim,
        cal.encodings,
        q,
        calib,
        tmp_path_factory.mktemp("w"),
        recipe_yaml="name: tiny\n",
    )


def _build(ctx, tmp_path, precision=Precision.INT8, **options):
    t = get_target("coreml")
    out = tmp_path / "a"
    out.mkdir()
    t.export(ctx, precision, options, out)
    return t, Artifact.read(out)


def _ops(art) -> Counter:
    from edgekit.targets.coreml_reference import load_program

    return Counter(op.op_type for op in load_program(art.path / art.file).functions["main"].operations)


def test_w8a8_carries_the_programs_encodings(ctx, tmp_path):
    t, art = _build(ctx, tmp_path)
    ops = _ops(art)
    n_weights = sum(k.endswith(".weight") for k in ctx.encodings.tensors)
    n_activations = len(ctx.encodings) - n_weights
    # a reshape/transpose re-quantizes its input with the input's encoding, so the program may hold more
    # activation Q nodes than encodings
    program_q = sum(str(n.target) == "quantized_decomposed.quantize_per_tensor.default" for n in ctx.sim.graph.nodes)
    assert program_q >= n_activations
    assert ops["constexpr_affine_dequantize"] >= n_weights  # int8 weights (and any quantized constant)
    # every activation Q/DQ of the program is a quantize/dequantize op (shared ones may be written once)
    assert 0 < ops["quantize"] <= program_q and ops["dequantize"] >= ops["quantize"]
    x = load_data(DataSpec("digits", "test", samples=16), ctx.bundle).inputs["pixel_values"]
    sim = ctx.sim(torch.from_numpy(x)).detach().numpy()
    assert cosine(t.run(t.load(art), {"pixel_values": x}), sim) > 0.999  # the reference interpreter runs it
    assert art.quantizer == "edgekit"
    assert art.notes[0] == "converted from torch.export"


@pytest.mark.parametrize(
    ("mode", "op"), [("weights", "constexpr_affine_dequantize"), ("palettize", "constexpr_lut_to_dense")]
)
def test_native_int8_modes(ctx, tmp_path, mode, op):
    t, art = _build(ctx, tmp_path, int8_mode=mode, palettize_bits=6, weight_threshold=0)
    ops = _ops(art)
    assert ops[op] >= 1 and ops["quantize"] == 0 and art.quantizer == "native"
    assert art.options == {"int8_mode": mode, "palettize_bits": 6, "weight_threshold": 0}  # what the recipe set
    x = load_data(DataSpec("digits", "test", samples=8), ctx.bundle).inputs["pixel_values"]
    ref = ctx.model(torch.from_numpy(x)).detach().numpy()
    assert cosine(t.run(t.load(art), {"pixel_values": x}), ref) > 0.99


def test_metadata_embedded(ctx, tmp_path):
    import coremltools as ct

    _, art = _build(ctx, tmp_path, precision=Precision.FP32)
    spec = ct.models.MLModel(str(art.path / art.file), skip_model_load=True).get_spec()
    meta = spec.description.metadata
    assert meta.author == "edgekit" and meta.userDefined["edgekit.recipe"] == "name: tiny\n"
    assert meta.userDefined["edgekit.precision"] == "fp32"
    assert "batch 1" in spec.description.input[0].shortDescription


def test_bad_option_is_a_recipe_error(ctx, tmp_path):
    from edgekit.errors import RecipeError

    with pytest.raises(RecipeError, match="int8_mode"):
        _build(ctx, tmp_path, int8_mode="w4a4")
