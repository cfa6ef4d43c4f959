"""TFLite specifics: real integer kernels from the full_integer program, dynamic-range mode, int64 -> int32 inputs."""

from __future__ import annotations

import collections
import json
from collections import Counter

import numpy as np
import pytest
import torch

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.metrics import agreement, cosine
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, ModelSpec, Precision, QuantSpec
from edgekit.targets.base import Artifact, CompileContext, get_target

from .conftest import TINY_VIT

pytest.importorskip("litert_torch", reason="tflite extra not installed (pip install 'edgekit[tflite]')")


def _kernels(path) -> Counter:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    td = it.get_tensor_details()
    return Counter(
        (o["op_name"], td[o["inputs"][1]]["dtype"].__name__)
        for o in it._get_ops_details()
        if o["op_name"] in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
    )


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    calib = load_data(DataSpec("digits", "train", samples=64), bundle)
    q = QuantSpec()
    cal = calibrate(bundle.module, ["pixel_values"], calib, q, bundle, "full_integer")  # tflite's profile
    return CompileContext(bundle, bundle.module, cal.sim, cal.encodings, q, calib, tmp_path_factory.mktemp("w"))


def _compile(ctx, precision, tmp_path, **options):
    t = get_target("tflite")
    out = tmp_path / precision.value
    out.mkdir()
    t.export(ctx, precision, options, out)
    return t, Artifact.read(out)


def test_int8_from_the_program_has_integer_kernels(vit, tmp_path):
    _, fp32 = _compile(vit, Precision.FP32, tmp_path)
    _, int8 = _compile(vit, Precision.INT8, tmp_path)
    kernels = _kernels(int8.path / int8.file)
    # every matmul/conv weight is int8 but the classifier's: the model's own output stays float, so LiteRT runs
    # that layer as a float kernel
    floats = {k: n for k, n in kernels.items() if k[1] != "int8"}
    assert floats == {("FULLY_CONNECTED", "float32"): 1} and sum(kernels.values()) == 14
    assert int8.size_mb < fp32.size_mb


def test_dynamic_range_option(vit, tmp_path):
    t, art = _compile(vit, Precision.INT8, tmp_path, dynamic=True)
    assert art.quantizer == "native" and "dynamic" in art.notes[0]
    x = load_data(DataSpec("digits", "test", samples=50), vit.bundle).inputs["pixel_values"]
    ref = vit.model(torch.from_numpy(x)).detach().numpy()
    out = t.run(t.load(art), {"pixel_values": x})
    assert cosine(out, ref) > 0.99 and agreement(out, ref) >= 90.0


def test_bert_int64_inputs_become_int32(tmp_path):
    bundle = load_model(ModelSpec("bert", {"num_hidden_layers": 1}))
    ctx = CompileContext(bundle, bundle.module, None, None, QuantSpec(), None, tmp_path)
    t, art = _compile(ctx, Precision.FP32, tmp_path)
    meta = json.loads((art.path / "artifact.json").read_text())
    assert [i["dtype"] for i in meta["inputs"]] == ["int32", "int32"]
    assert any("int32" in n for n in art.notes)
    ids = np.random.default_rng(0).integers(0, 1000, (3, 64)).astype(np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    ref = bundle.module(*[torch.from_numpy(v) for v in feeds.values()]).detach().numpy()
    np.testing.assert_allclose(t.run(t.load(art), feeds), ref, atol=1e-4)


def test_dynamic_int8_with_embeddings_is_a_clear_error(tmp_path):
    from edgekit.errors import UnsupportedOpError

    bundle = load_model(ModelSpec("bert", {"num_hidden_layers": 1}))
    ctx = CompileContext(bundle, bundle.module, None, None, QuantSpec(), None, tmp_path)
    with pytest.raises(UnsupportedOpError, match="EMBEDDING_LOOKUP"):
        _compile(ctx, Precision.INT8, tmp_path, dynamic=True)


def _program(model: torch.nn.Module, x: np.ndarray):
    from edgekit.data import DataSet

    return calibrate(model.eval(), ["x"], DataSet({"x": x}, None, "given"), QuantSpec(), profile="full_integer").sim


def test_int8_converts_a_constant_tensors_tiny_scale():
    """A tensor that is zero on every calibration sample gets the smallest scale; LiteRT formats scales with str()
    into an MLIR type, which refused a float printed without a decimal point ("Unable to parse type")."""
    from edgekit.targets.pt2e_lowering import pt2e_form
    from edgekit.targets.tflite import TFLiteTarget

    torch.manual_seed(0)
    program = _program(_Conv(), np.zeros((8, 3, 4, 4), np.float32))
    flat = TFLiteTarget._convert(pt2e_form(program), {"x": torch.zeros(1, 3, 4, 4)}, static=True)
    assert len(flat) > 0


class _Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)) + 1.0


class _TwoLinears(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.fc2 = torch.nn.Linear(16, 8), torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc(x))


def test_int8_uniform_bias_with_per_channel_weights_matches_the_program():
    """LiteRT quantized a splat bias (all elements equal: HF Hiera's init) with the first channel's scale only;
    hiera tflite int8 drifted to cosine 0.87 vs the simulated program."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.targets.pt2e_lowering import pt2e_form
    from edgekit.targets.tflite import TFLiteTarget

    torch.manual_seed(0)
    model = _TwoLinears()
    with torch.no_grad():
        model.fc.weight.mul_(torch.linspace(0.2, 1.0, 8)[:, None])  # spread per-channel scales
        model.fc.bias.fill_(0.5)
    program = _program(model, np.random.default_rng(0).random((32, 4, 16), dtype=np.float32))
    x = torch.rand(1, 4, 16)
    ref = program(x).detach().numpy()
    runner = Interpreter(model_content=TFLiteTarget._convert(pt2e_form(program), {"x": x}, static=True))
    runner = runner.get_signature_runner()
    s_in, z_in = runner.get_input_details()["x"]["quantization"]
    got = next(iter(runner(x=np.clip(np.round(x.numpy() / s_in + z_in), -128, 127).astype(np.int8)).values()))
    assert np.abs(got - ref).max() < 0.01 * np.abs(ref).max()  # the splat bias was off by 0.6 of 0.72


def test_conversion_failure_reason_names_the_error_and_where():
    from edgekit.targets.tflite import converter_reason

    passes = RuntimeError(
        "Failed to run converter passes: /venv/lib/python3.11/site-packages/transformers/models/m/modeling_m.py:253:0:"
        " error: 'tfl.mul' op operands don't have broadcast-compatible shapes\nnote: see current operation"
    )
    assert converter_reason(passes) == (
        "Failed to run converter passes: 'tfl.mul' op operands don't have broadcast-compatible shapes "
        "(at transformers/models/m/modeling_m.py:253)"
    )
    parse = RuntimeError('Unable to parse type:\nerror: "!quant.uniform<i8:f32,1e-12:0>":1:20: bad float literal')
    parse.add_note("While executing %quantize_7 : [num_users=1] = call_function[target=torch.ops.q.quantize.default]")
    reason = converter_reason(parse)
    assert "\n" not in reason and reason.startswith("Unable to parse type: ") and "bad float literal" in reason
    assert reason.endswith("(node quantize_7: torch.ops.q.quantize.default)")
    assert converter_reason(ValueError("plain")) == "plain"


def _padded_bert(profile: str, tmp_path):
    """A 1-layer random BERT quantized by the graph quantizer under ``profile`` on padded random sentences:
    (compile context, its simulated and FP32 outputs on 8 of them, their feeds)."""
    from edgekit.data import DataSet
    from edgekit.quant.graph import graph_quantize_profiles

    torch.manual_seed(0)
    bundle = load_model(ModelSpec("bert", {"num_hidden_layers": 1}))
    names = [s.name for s in bundle.inputs]
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (24, 32)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[:, 20:] = 0  # padded sentences
    mask[::3, 12:] = 0
    data = DataSet({"input_ids": ids, "attention_mask": mask}, None, "padded random ids")
    q = QuantSpec(calibration=DataSpec("given", batch_size=8))
    res = graph_quantize_profiles(bundle.module, bundle, names, data, q, (profile,))[profile]
    feeds = {n: data.inputs[n][:8] for n in names}
    with torch.no_grad():
        args = [torch.from_numpy(v) for v in feeds.values()]
        ref, sim = bundle.module(*args).numpy(), res.program(*args).numpy()
    ctx = CompileContext(bundle, bundle.module, res.program, res.encodings, q, data, tmp_path / "work")
    ctx.workdir.mkdir()
    return ctx, sim, ref, feeds


def test_full_integer_bert_with_padding_masks_its_scores_on_their_own_grid(tmp_path):
    """HF adds finfo.min to masked scores: quantized on its own range that mask left no grid for the scores (the
    simulated MiniLM fell to cosine 0.35) and its int8 ADD aborted LiteRT's XNNPACK on load. The mask is now
    quantized on the scores' grid and the scores' range leaves the masked positions out."""
    ctx, sim, ref, feeds = _padded_bert("full_integer", tmp_path)
    assert cosine(sim, ref) > 0.95
    t, art = _compile(ctx, Precision.INT8, tmp_path)
    out = t.run(t.load(art), feeds)
    assert cosine(out, sim) > 0.98


# float kernels a 16x8 BERT embedder keeps: the word-embedding lookup (litert-torch folds the table's Q/DQ), the
# padding mask built once from the int32 mask, and the pooling and L2 normalization on the model's float output
BERT_16X8_FLOAT = {"EMBEDDING_LOOKUP", "RESHAPE", "SELECT_V2", "BROADCAST_TO", "CAST", "MUL", "SUM", "MAXIMUM"}
BERT_16X8_FLOAT |= {"DIV", "ABS", "SQRT"}


def test_int16_activations_make_every_encoder_kernel_integer(tmp_path):
    """``activations: int16`` (LiteRT 16x8, graph profile full_integer_16x8): the program converts (litert-torch
    refused int16 activations next to int8 GELU and converter-quantized constants), every matmul, attention,
    GELU and LayerNorm kernel is int16 x int8, and LiteRT computes what the simulated program does."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.targets.tflite_kernels import kernel_census

    ctx, sim, ref, feeds = _padded_bert("full_integer_16x8", tmp_path)
    assert cosine(sim, ref) > 0.999
    t, art = _compile(ctx, Precision.INT8, tmp_path, activations="int16")
    assert cosine(t.run(t.load(art), feeds), sim) > 0.999
    flat = (art.path / art.file).read_bytes()
    census = kernel_census(flat)
    assert census.int16 > 20 and set(census.floating) <= BERT_16X8_FLOAT and art.notes[0].startswith("16x8")
    it = Interpreter(model_content=flat)
    dtypes = {d["index"]: d["dtype"].__name__ for d in it.get_tensor_details()}
    by_op = collections.defaultdict(set)
    for op in it._get_ops_details():
        by_op[op["op_name"]].add((dtypes[op["inputs"][0]], dtypes[op["outputs"][0]]))
    assert by_op["FULLY_CONNECTED"] == {("int16", "int16")}  # LiteRT's int8-in/int16-out FC computes zeros
    for name in ("BATCH_MATMUL", "SOFTMAX", "LOGISTIC", "MEAN", "RSQRT", "ADD"):
        assert by_op[name] == {("int16", "int16")}, name


def test_int16_activations_option():
    from edgekit.errors import RecipeError

    t = get_target("tflite")
    assert t.profile(t.parse_options({})) == "full_integer"
    assert t.profile(t.parse_options({"activations": "int16"})) == "full_integer_16x8"
    with pytest.raises(RecipeError, match="int4"):
        t.parse_options({"activations": "int4"})
    with pytest.raises(RecipeError, match="dynamic"):
        t.parse_options({"dynamic": True, "activations": "int16"})


def test_int16_activations_need_edgekits_quantizer(vit, tmp_path):
    import dataclasses

    from edgekit.errors import UnsupportedOpError
    from edgekit.recipe import Quantizer

    inc = dataclasses.replace(vit, quant=QuantSpec(quantizer=Quantizer.NEURAL_COMPRESSOR))
    with pytest.raises(UnsupportedOpError, match="quantizer: edgekit"):
        _compile(inc, Precision.INT8, tmp_path, activations="int16")


def test_int16_activations_vit_convolution_biases_are_int64(tmp_path):
    """LiteRT's int16 (DEPTHWISE_)CONV_2D takes an int64 bias; litert-torch writes int32, which the depthwise kernel
    refused at load and CONV_2D read as garbage. The tflite target widens them; the class token's concat is
    rewritten as pads and an add (no int16 CONCATENATION)."""
    from edgekit.quant.graph import graph_quantize_profiles

    bundle = load_model(ModelSpec("vit", TINY_VIT))
    calib = load_data(DataSpec("digits", "train", samples=32), bundle)
    q = QuantSpec(calibration=DataSpec("given", batch_size=16))
    res = graph_quantize_profiles(bundle.module, bundle, ["pixel_values"], calib, q, ("full_integer_16x8",))
    program = res["full_integer_16x8"].program
    ctx = CompileContext(bundle, bundle.module, program, None, q, calib, tmp_path / "work")
    ctx.workdir.mkdir()
    t, art = _compile(ctx, Precision.INT8, tmp_path, activations="int16")
    assert any("stored as int64" in n for n in art.notes)
    x = calib.inputs["pixel_values"][:16]
    with torch.no_grad():
        sim = program(torch.from_numpy(x)).numpy()
    assert cosine(t.run(t.load(art), {"pixel_values": x}), sim) > 0.999
