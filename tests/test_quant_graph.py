"""edgekit's quantizer: capture + op-pattern annotation (any class), estimators as observers, lowering to targets."""

from __future__ import annotations

import collections
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekit.archs.base import ModelBundle
from edgekit.data.base import DataSet
from edgekit.errors import ModelError, RecipeError
from edgekit.metrics import cosine
from edgekit.recipe import DataSpec, Estimator, Quantizer, QuantSpec, TensorSpec, recipe_from_dict

from .conftest import TINY_VIT

pytest.importorskip("torchao.quantization.pt2e")

_Q = torch.ops.quantized_decomposed
aten = torch.ops.aten
DEQUANTIZE = (_Q.dequantize_per_tensor.default, _Q.dequantize_per_channel.default)


class SameConv(torch.nn.Conv2d):
    """TF-style "same" padding in its own forward (as EfficientNet-Lite's convolutions do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class SameNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv(3, 8, 3, stride=2)
        self.block = SameConv(8, 8, 3)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        y = y + self.block(y)
        return self.head(y.mean((2, 3)))


class Gpt2Hidden(torch.nn.Module):
    """A tiny GPT-2 (transformers' Conv1D layers, eager attention): the last hidden state."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=2, attn_implementation="eager")
        self.gpt = GPT2Model(cfg).eval()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.gpt(input_ids=input_ids).last_hidden_state


def _quantize(model, spec: TensorSpec, data: np.ndarray, profile="ort_ov", **quant):
    from edgekit.quant.graph import graph_quantize

    bundle = ModelBundle(model.eval(), (spec,), family="custom", task="classification", is_transformer=False)
    q = QuantSpec(calibration=DataSpec("given", batch_size=8), **quant)
    return graph_quantize(model, bundle, [spec.name], DataSet({spec.name: data}, None, "test"), q, profile)


def _dequantized_inputs(program: torch.fx.GraphModule) -> collections.Counter:
    """Per aten op, how many of its inputs come out of a dequantize node."""
    out: collections.Counter = collections.Counter()
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target not in DEQUANTIZE:
            for a in node.args:
                if isinstance(a, torch.fx.Node) and a.op == "call_function" and a.target in DEQUANTIZE:
                    out[node.target.__name__.split(".")[0]] += 1
    return out


def _sqnr(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - x) ** 2), 1e-30)))


@pytest.fixture(scope="module")
def same_net():
    torch.manual_seed(0)
    return SameNet().eval(), np.random.default_rng(0).standard_normal((32, 3, 27, 27)).astype(np.float32)


@pytest.mark.parametrize("estimator", ["minmax", "mse"])
def test_conv_subclass_with_its_own_padding_is_quantized(same_net, estimator):
    model, data = same_net
    spec = TensorSpec("x", ("batch", 3, 27, 27))
    res = _quantize(model, spec, data, estimator=Estimator(estimator))
    assert res.info["quantized_ops"] == {"conv": 2, "add": 1, "linear": 1}
    counts = _dequantized_inputs(res.program)
    assert counts["conv2d"] == 4 and counts["linear"] == 2  # activation + weight of each
    assert counts["add"] == 2  # ort_ov: the add between two requantized convolutions is chained
    nodes = {n.name: n for n in res.program.graph.nodes}
    relu = next(n for n in nodes.values() if n.target is torch.ops.aten.relu.default)
    assert relu.args[0].target is torch.ops.aten.conv2d.default  # nothing between the conv and its ReLU
    assert all(u.target is _Q.quantize_per_tensor.default for u in relu.users)  # requantized after the ReLU
    (result,) = next(n for n in nodes.values() if n.op == "output").args[0]
    assert result.target is torch.ops.aten.linear.default  # the model's output stays float
    x = torch.from_numpy(data[:5])  # a batch the calibration never had: the batch axis stays dynamic
    with torch.no_grad():
        ref, sim = model(x).numpy(), res.program(x).numpy()
    assert sim.shape == ref.shape
    assert _sqnr(ref, sim) > 25.0
    keys = list(res.encodings.tensors)
    assert any(k.startswith("stem/conv2d") and k.endswith(".weight") for k in keys), keys
    assert res.encodings[next(k for k in keys if k.endswith(".weight"))].axis == 0


def test_openvino_profile_puts_same_padding_inside_the_qdq(same_net):
    """DQ -> pad -> conv under the openvino profile (OpenVINO folds the pad into its int8 convolution); exact."""
    model, data = same_net
    spec = TensorSpec("x", ("batch", 3, 27, 27))
    ov, ort = (_quantize(model, spec, data, profile=p) for p in ("openvino", "ort_ov"))
    pads = [n for n in ov.program.graph.nodes if n.target is torch.ops.aten.pad.default]
    assert pads and all(p.args[0].target in DEQUANTIZE for p in pads)
    assert all(u.target is torch.ops.aten.conv2d.default for p in pads for u in p.users)
    ort_pads = [n for n in ort.program.graph.nodes if n.target is torch.ops.aten.pad.default]
    assert all(u.target is _Q.quantize_per_tensor.default for p in ort_pads for u in p.users)  # ORT: DQ -> Conv
    x = torch.from_numpy(data[:5])
    with torch.no_grad():
        ref, a, b = model(x).numpy(), ov.program(x).numpy(), ort.program(x).numpy()
    assert _sqnr(ref, a) > 25.0 and abs(_sqnr(ref, a) - _sqnr(ref, b)) < 3.0


def test_two_d_linear_lowers_to_an_integer_matmul_in_onnx(same_net, tmp_path):
    """A linear on a 2-D input (SameNet's head) is a Gemm in the dynamo ONNX; ONNX Runtime runs DQ -> Gemm in
    float after dequantizing the whole weight, so the Q/DQ ONNX carries it as MatMul + Add on a [K, N] int8 weight
    (per-channel axis 1), which ONNX Runtime fuses into an integer matmul. Same numbers as the program."""
    import onnxruntime as ort

    from edgekit.targets.pt2e_lowering import qdq_onnx_export

    model, data = same_net
    spec = TensorSpec("x", ("batch", 3, 27, 27))
    res = _quantize(model, spec, data, profile="onnxruntime")
    bundle = ModelBundle(model, (spec,), family="custom", task="classification", is_transformer=False)
    onnx_model = qdq_onnx_export(res.program, bundle, tmp_path / "m.onnx", 18)
    ops = collections.Counter(n.op_type for n in onnx_model.graph.node)
    assert ops["Gemm"] == 0 and ops["MatMul"] == 1, ops
    inits = {i.name: i for i in onnx_model.graph.initializer}
    matmul = next(n for n in onnx_model.graph.node if n.op_type == "MatMul")
    weight_dq = next(n for n in onnx_model.graph.node if n.output[0] == matmul.input[1])
    assert list(inits[weight_dq.input[0]].dims) == [8, 5]  # [K, N]
    assert next(a.i for a in weight_dq.attribute if a.name == "axis") == 1
    x = data[:5]
    out = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        sim = res.program(torch.from_numpy(x)).numpy()
    assert _sqnr(sim, out) > 30.0


def test_full_integer_profile_quantizes_adds_keeps_logits_float(same_net):
    model, data = same_net
    res = _quantize(model, TensorSpec("x", ("batch", 3, 27, 27)), data, profile="full_integer")
    counts = _dequantized_inputs(res.program)
    assert counts["add"] == 2  # both residual inputs
    assert res.info["quantized_ops"]["add"] == 1
    (result,) = next(n for n in res.program.graph.nodes if n.op == "output").args[0]
    assert result.target not in DEQUANTIZE  # logits stay float: 8-bit logits flip near-tied top-1s


def test_profiles_share_scales_on_shared_tensors(same_net):
    from edgekit.archs.base import ModelBundle
    from edgekit.quant.graph import graph_quantize_profiles, merge_encodings

    model, data = same_net
    spec = TensorSpec("x", ("batch", 3, 27, 27))
    bundle = ModelBundle(model, (spec,), family="custom", task="classification", is_transformer=False)
    q = QuantSpec(calibration=DataSpec("given", batch_size=8), activation_symmetric=False)
    calib = DataSet({"x": data}, None, "test")
    results = graph_quantize_profiles(model, bundle, ["x"], calib, q, ("ort_ov", "full_integer", "tensorrt"))
    merged = merge_encodings(results)
    ort, full = results["ort_ov"].encodings.tensors, results["full_integer"].encodings.tensors
    shared = set(ort) & set(full)
    assert len(shared) >= 6 and all(ort[k] == full[k] for k in shared)
    assert set(merged.meta["profiles"]) == {"ort_ov", "full_integer", "tensorrt"}
    assert set(merged.meta["profiles"]["ort_ov"]) == set(ort)  # one entry per shared tensor
    trt = [k for k in merged.meta["profiles"]["tensorrt"] if k.endswith("@tensorrt")]
    assert trt and all(merged[k].zero_point == (0,) for k in trt)  # its symmetric activations: their own grid


@pytest.fixture(scope="module")
def gpt2():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = Gpt2Hidden()
    ids = np.random.default_rng(0).integers(0, 64, (16, 12)).astype(np.int64)
    return model, ids, _quantize(model, TensorSpec("input_ids", ("batch", "sequence"), "int64"), ids)


def test_gpt2_conv1d_attention_matmuls_and_embeddings_get_qdq(gpt2):
    model, ids, res = gpt2
    conv1d = [n for n, m in model.named_modules() if type(m).__name__ == "Conv1D"]
    assert len(conv1d) == 4
    counts = _dequantized_inputs(res.program)
    assert "add" not in counts  # ort_ov: the residual stream stays float
    assert counts["addmm"] == 2 * len(conv1d)  # activation and (in, out) weight of every Conv1D
    assert counts["matmul"] == 4  # Q·Kᵀ and P·V, both operands
    assert counts["embedding"] == 2  # token and position tables
    for name in ("c_attn", "c_fc"):
        key = next(k for k in res.encodings.tensors if f"{name}/addmm" in k and k.endswith(".weight"))
        assert res.encodings[key].axis == 1  # Conv1D's weight is (in, out): per output channel
    x = torch.from_numpy(ids[:3])
    with torch.no_grad():
        assert _sqnr(model(x).numpy(), res.program(x).numpy()) > 20.0


@pytest.mark.parametrize(
    "profile, float_kinds", [("onnxruntime", {"embedding"}), ("openvino", {"matmul"}), ("ort_ov", set())]
)
def test_x86_profiles_leave_their_slow_ops_float(gpt2, profile, float_kinds):
    model, ids, _ = gpt2
    res = _quantize(model, TensorSpec("input_ids", ("batch", "sequence"), "int64"), ids, profile=profile)
    quantized = set(res.info["quantized_ops"])
    assert quantized >= {"addmm"} and not quantized & float_kinds
    assert quantized >= {"embedding", "matmul"} - float_kinds


def _upstream_dequantize(node: torch.fx.Node) -> torch.fx.Node | None:
    """The dequantize a matmul operand comes from, through reshapes, transposes and splits, or None (float)."""
    from edgekit.quant.graph.annotate import _VALUE_PRESERVING

    seen = 0
    while isinstance(node, torch.fx.Node) and seen < 12:
        if node.op == "call_function" and node.target in DEQUANTIZE:
            return node
        if node.op != "call_function" or not (
            node.target in _VALUE_PRESERVING or "getitem" in str(node.target) or "split" in str(node.target)
        ):
            return None
        node, seen = node.args[0], seen + 1
    return None


def test_openvino_profile_quantizes_the_scores_product_symmetric_and_keeps_pv_float(gpt2):
    """OpenVINO runs its fused MHA in int8 when Q and K are symmetric int8 and P·V is float (as NNCF places them)."""
    from edgekit.quant.graph.annotate import _is_softmax

    model, ids, _ = gpt2
    res = _quantize(model, TensorSpec("input_ids", ("batch", "sequence"), "int64"), ids, profile="openvino")
    matmuls = [n for n in res.program.graph.nodes if n.op == "call_function" and "matmul" in str(n.target)]
    scores = [n for n in matmuls if not any(_is_softmax(a) for a in n.args[:2])]
    pv = [n for n in matmuls if any(_is_softmax(a) for a in n.args[:2])]
    assert len(scores) == len(pv) >= 1
    for n in scores:
        dqs = [_upstream_dequantize(a) for a in n.args[:2]]
        assert all(d is not None and int(d.args[2]) == 0 and d.args[5] == torch.int8 for d in dqs), n
    for n in pv:
        assert all(_upstream_dequantize(a) is None for a in n.args[:2]), n
    x = torch.from_numpy(ids[:3])
    with torch.no_grad():
        assert _sqnr(model(x).numpy(), res.program(x).numpy()) > 20.0


def _probability_scales(program: torch.fx.GraphModule) -> set[float]:
    """Scales of the Q/DQ on attention probabilities (a quantize whose input comes from a softmax)."""
    from edgekit.quant.graph.annotate import _is_softmax

    return {
        float(n.args[1])
        for n in program.graph.nodes
        if n.target is _Q.quantize_per_tensor.default and _is_softmax(n.args[0])
    }


def test_fixed_probability_grid_only_where_litert_needs_it(gpt2):
    model, ids, ort = gpt2
    full = _quantize(model, TensorSpec("input_ids", ("batch", "sequence"), "int64"), ids, profile="full_integer")
    assert _probability_scales(full.program) == {1.0 / 256}
    calibrated = _probability_scales(ort.program)
    assert calibrated and all(s != 1.0 / 256 for s in calibrated)


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: torch.export cannot capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x * 2 if x.sum() > 0 else x - 1)


def test_uncapturable_model_is_one_line_model_error():
    data = np.ones((8, 4), np.float32)
    with pytest.raises(ModelError, match=r"torch\.export could not capture") as info:
        _quantize(DataDependent(), TensorSpec("x", ("batch", 4)), data)
    assert "\n" not in str(info.value) and "torch.where/torch.cond" in str(info.value)


def test_uncapturable_model_still_gets_its_fp32_artifacts(tmp_path):
    """No INT8 program means INT8 rows ``unsupported`` with the capture's one-line reason; FP32 still builds."""
    import edgekit

    result = edgekit.export(
        DataDependent().eval(),
        tmp_path / "run",
        targets=("onnx",),
        precisions=("fp32", "int8"),
        calib="random",
        val="random",
        inputs=[{"name": "x", "shape": ["batch", 4]}],
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    rows = {r["precision"]: r for r in result.report["rows"]}
    assert rows["fp32"]["status"] == "ok" and rows["int8"]["status"] == "unsupported"
    assert "torch.export could not capture" in rows["int8"]["notes"][0] and not result.passed
    assert not (tmp_path / "run" / "encodings.json").exists()


def test_old_graph_spelling_loads_and_other_quantizers_refuse_edgekit_options():
    base = {"name": "g", "model": {"source": "vit"}, "targets": [{"name": "onnx"}]}
    q = {"quantizer": "graph", "calibration": {"source": "digits"}, "scale_reparam": True, "ignore": ["*.classifier"]}
    assert recipe_from_dict({**base, "quantization": q}).quantization.quantizer is Quantizer.EDGEKIT
    with pytest.raises(RecipeError, match=r"quantizer native does not take quantization\.scale_reparam"):
        recipe_from_dict({**base, "quantization": {"quantizer": "native", "scale_reparam": True}})
    with pytest.raises(RecipeError, match=r"quantizer neural-compressor does not take quantization\.ignore"):
        recipe_from_dict({**base, "quantization": {"quantizer": "neural-compressor", "ignore": ["x"]}})


def _onnx_dq_consumers(path) -> collections.Counter:
    import onnx

    model = onnx.load(str(path))
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    out: collections.Counter = collections.Counter()
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear":
            out[n.op_type] += sum(i in dq for i in n.input)
    return out


def test_export_cli_every_target_agrees_with_its_profiles_program(run_cli, tmp_path):
    flags = [f for k, v in TINY_VIT.items() for f in ("--config", f"{k}={v}")]
    out = tmp_path / "run"
    code, _, err = run_cli(
        "export", "vit", *flags, "--input", "pixel_values:batch,1,8,8", "--calib", "digits", "--calib-samples",
        "32", "--val", "digits:test", "--val-samples", "50", "--target", "onnx,openvino,tflite,executorch,coreml",
        "--precision", "int8", "--no-bench", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    rows = {r["target"]: r for r in report["rows"]}
    full = ("tflite", "executorch", "coreml")
    assert {t: r["status"] for t, r in rows.items()} == dict.fromkeys(("onnx", "openvino", *full), "ok")
    # each target lowers the program of its own profile and is compared with that program
    assert {t: r["profile"] for t, r in rows.items()} == {
        "onnx": "onnxruntime",
        "openvino": "openvino",
        **dict.fromkeys(full, "full_integer"),
    }
    with np.load(out / "reference.npz") as z:
        assert {"sim_int8", "sim_int8_onnxruntime", "sim_int8_openvino", "sim_int8_full_integer"} <= set(z.files)
        assert not np.array_equal(z["sim_int8_onnxruntime"], z["sim_int8_full_integer"])
    assert any("kernels integer" in n for n in rows["tflite"]["notes"])
    quantized = report["calibration"]["profiles"]["onnxruntime"]["quantized_ops"]
    consumers = _onnx_dq_consumers(out / "onnx" / "int8" / "model.onnx")
    # every quantized linear/matmul/conv of the program reads two dequantized tensors in the ONNX
    assert consumers["Gemm"] + consumers["MatMul"] == 2 * (quantized["linear"] + quantized["matmul"])
    assert consumers["Conv"] == 2 * quantized["conv"]
    assert not consumers["Add"] and not consumers["Softmax"]
    for target, row in rows.items():
        assert row["quantizer"] == "edgekit"
        assert row["accuracy"]["sqnr_vs_sim_db"] > 30.0, target
    enc = json.loads((out / "encodings.json").read_text())
    assert len(enc["tensors"]) == report["calibration"]["encodings"] > 0
    assert set(enc["meta"]["profiles"]) == {"onnxruntime", "openvino", "full_integer"}
    # openvino: attention matmuls float; onnxruntime: embedding tables float (neither here: a ViT)
    ov_ops = report["calibration"]["profiles"]["openvino"]["quantized_ops"]
    assert quantized["matmul"] > 0 and "matmul" not in ov_ops and ov_ops["linear"] == quantized["linear"]


def test_constant_pad_moves_to_nhwc_order():
    from edgekit.targets.tflite_layout import nhwc_pad

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    for pad in ([1, 2], [0, 1, 2, 3], [1, 0, 0, 1, 2, 0]):
        ref = F.pad(x, pad).permute(0, 2, 3, 1)
        assert torch.equal(F.pad(x.permute(0, 2, 3, 1), nhwc_pad(pad)), ref), pad


def test_tflite_full_integer_conv_net_has_no_layout_transposes(same_net, tmp_path):
    pytest.importorskip("litert_torch")
    from edgekit.targets.tflite_kernels import kernel_precision

    model, data = same_net
    spec = TensorSpec("x", ("batch", 3, 27, 27))
    res = _quantize(model, spec, data, profile="full_integer", activation_symmetric=False)
    from edgekit.quant.pt2e import activations_as_int8

    activations_as_int8(res.program)
    import litert_torch

    from edgekit.targets.tflite import _static_config
    from edgekit.targets.tflite_layout import register_pad_layout

    assert register_pad_layout()
    flat = bytes(
        litert_torch.convert(res.program, (torch.from_numpy(data[:1]),), quant_config=_static_config()).model_content()
    )
    integer, floating = kernel_precision(flat)
    assert set(floating) <= {"FULLY_CONNECTED"} and integer >= 4  # the float logits' layer only
    from ai_edge_litert.interpreter import Interpreter

    ops = [o["op_name"] for o in Interpreter(model_content=flat)._get_ops_details()]
    assert ops.count("TRANSPOSE") <= 2, ops  # in and out only: the "same" pads sit between no transposes


def test_executorch_floats_only_layers_whose_output_is_float(same_net):
    from edgekit.targets.executorch import float_weights_xnnpack_cannot_take
    from edgekit.targets.pt2e_lowering import weights_folded

    model, data = same_net
    res = _quantize(model, TensorSpec("x", ("batch", 3, 27, 27)), data, profile="full_integer")
    # the convs requantize after their ReLU: XNNPACK takes them as int8; only the float-logits head is floated
    assert float_weights_xnnpack_cannot_take(weights_folded(res.program)) == ["head"]


def test_16x8_rewrites_keep_the_function_and_leave_no_int8_activation():
    """full_integer_16x8: GELU, LayerNorm, scalar operands and broadcasting adds are rewritten into ops with int16
    kernels (exact in FP32 but for GELU's tanh form), and every activation Q/DQ of the program is int16."""
    from edgekit.archs import load_model
    from edgekit.quant.graph import PROFILES, graph_quantize
    from edgekit.quant.graph.capture import capture
    from edgekit.quant.graph.rewrites import apply_rewrites
    from edgekit.recipe import ModelSpec

    torch.manual_seed(0)
    bundle = load_model(ModelSpec("bert", {"num_hidden_layers": 1, "vocab_size": 500}))
    ids = np.random.default_rng(0).integers(0, 500, (8, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[::2, 10:] = 0
    args = (torch.from_numpy(ids), torch.from_numpy(mask))
    gm = capture(bundle.module, bundle, args)
    with torch.no_grad():
        ref = gm(*args)
        counts = apply_rewrites(gm, PROFILES.get("full_integer_16x8").rewrites)
        out = gm(*args)
    # 1 GELU, 3 LayerNorms; scalars: the attention scale, GELU's two, each LayerNorm's eps; broadcast adds: the
    # mask, each LayerNorm's eps and bias, the position embeddings (batch 1) onto the token embeddings
    assert counts == {
        "gelu_sigmoid": 1,
        "layer_norm_ops": 3,
        "concat_as_adds": 0,
        "scalar_operands": 6,
        "broadcast_adds": 8,
    }
    assert not {aten.gelu.default, aten.layer_norm.default} & {n.target for n in gm.graph.nodes}
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=0)

    data = DataSet({"input_ids": ids, "attention_mask": mask}, None, "random ids")
    q = QuantSpec(calibration=DataSpec("given", batch_size=8))
    res = graph_quantize(bundle.module, bundle, ["input_ids", "attention_mask"], data, q, "full_integer_16x8")
    grids = {(n.target, n.args[-1]) for n in res.program.graph.nodes if n.target in DEQUANTIZE}
    assert grids == {(_Q.dequantize_per_tensor.default, torch.int16), (_Q.dequantize_per_channel.default, torch.int8)}
    assert res.info["activations"].startswith("int16") and res.info["rewrites"] == counts
    with torch.no_grad():
        assert cosine(res.program(*args).numpy(), ref.numpy()) > 0.999
