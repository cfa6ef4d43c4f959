"""edgekit quantizer passes: SmoothQuant (exact in FP32), bias correction, MSE weight clipping; their recipe checks;
one run with every pass (weight rounding's own tests: test_quant_rounding.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.archs.base import ModelBundle
from edgekit.data.base import DataSet
from edgekit.errors import RecipeError
from edgekit.recipe import (
    DataSpec,
    QuantSpec,
    SmoothFold,
    SmoothQuantSpec,
    TensorSpec,
    WeightClipping,
    recipe_from_dict,
)

from .conftest import write_yaml

pytest.importorskip("torchao.quantization.pt2e")


class Block(torch.nn.Module):
    """Pre-LN block (LN -> q, k only), a linear -> linear chain, GELU -> linear (nothing to fold into) and a
    post-LN residual (the LN output read by a linear and an add). Channel 3 of every LN output is an outlier."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln, self.post = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.q, self.k = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, 2 * d), torch.nn.Linear(2 * d, d)
        self.act_in, self.out = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        with torch.no_grad():
            self.ln.weight[3] = self.post.weight[3] = 30.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        y = self.q(h) * self.k(h)
        y = self.fc2(self.fc1(y))  # fc1's output is read by fc2 only: folds into fc1's rows
        y = self.act_in(torch.nn.functional.gelu(y))
        p = self.post(y)
        return self.out(p) + p


def _bundle(model, spec):
    return ModelBundle(model.eval(), (spec,), family="custom", task="embedding", is_transformer=False)


def _batches(data, size=16):
    return lambda: ((torch.from_numpy(data[i : i + size]),) for i in range(0, len(data), size))


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    data = np.random.default_rng(0).standard_normal((64, 6, 16)).astype(np.float32)
    return Block().eval(), TensorSpec("x", ("batch", 6, 16)), data


def _captured(model, spec, data):
    from edgekit.quant.graph.capture import capture

    return capture(model, _bundle(model, spec), (torch.from_numpy(data[:8]),))


@pytest.mark.parametrize("mode", [SmoothFold.SKIP, SmoothFold.MULTIPLY])
def test_smooth_quant_is_exact_in_fp32_and_moves_the_scale_into_weights(block, mode):
    from edgekit.quant.graph.smooth import smooth_quant

    model, spec, data = block
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gm = _captured(model, spec, data)
    info = smooth_quant(gm, _batches(data), SmoothQuantSpec(alpha=0.5, unfoldable=mode), symmetric=False)
    x = torch.from_numpy(data[:20])
    with torch.no_grad():
        ref, got = model(x), gm(x)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=5e-5)  # exact up to float32 reassociation
    assert info["fp32_max_rel_change"] < 1e-5
    params = dict(gm.named_parameters())
    assert not torch.equal(params["ln.weight"], before["ln.weight"])  # 1/s folded into the pre-LN
    assert params["ln.weight"][3] < before["ln.weight"][3]  # the outlier channel shrinks the most
    for name in ("q.weight", "k.weight", "fc1.weight", "fc1.bias", "fc2.weight"):  # fc1's rows carry fc2's 1/s
        assert not torch.equal(params[name], before[name]), name
    for k, v in model.state_dict().items():  # the user's model is not touched
        assert torch.equal(v, before[k]), k
    if mode is SmoothFold.SKIP:
        assert info == {**info, "layer_norm": 1, "linear": 1}
        # fc1 reads q * k and act_in reads a GELU: nothing to fold into; the post-LN output also feeds the residual
        assert info["skipped (no producer to fold into)"] == 2 and info["skipped (other readers)"] == 1
        assert torch.equal(params["post.weight"], before["post.weight"])  # its output also feeds the residual
    else:
        assert info["multiply"] == 2 and info["layer_norm"] == 2
        assert not torch.equal(params["post.weight"], before["post.weight"])
        muls = [n for n in gm.graph.nodes if str(n.target).startswith("_smooth_scale_")]
        assert len(muls) == 3  # x * 1/s before fc1 and act_in, x * s on the post-LN residual


def _quantize(model, spec, data, **quant):
    from edgekit.quant.graph import graph_quantize

    q = QuantSpec(calibration=DataSpec("given", batch_size=16), **quant)
    return graph_quantize(model, _bundle(model, spec), [spec.name], DataSet({spec.name: data}, None, "t"), q)


def _sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum()))


class PreLN(torch.nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.ln, self.fc = torch.nn.LayerNorm(d), torch.nn.Linear(d, d)
        with torch.no_grad():
            self.ln.weight[3] = 40.0  # an outlier channel that per-tensor activation quantization cannot hold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.ln(x))


def test_smooth_quant_auto_alpha_improves_the_quantized_program():
    torch.manual_seed(0)
    model, spec = PreLN().eval(), TensorSpec("x", ("batch", 6, 32))
    data = np.random.default_rng(0).standard_normal((64, 6, 32)).astype(np.float32)
    x = torch.from_numpy(data[:20])
    plain = _quantize(model, spec, data, activation_symmetric=False)
    res = _quantize(model, spec, data, activation_symmetric=False, smooth_quant=SmoothQuantSpec(alpha="auto"))
    assert res.info["smooth_quant"]["layer_norm"] == 1 and set(res.info["smooth_quant"]["alphas"]) == {"fc"}
    with torch.no_grad():
        ref = model(x)
        assert _sqnr(ref, res.program(x)) > _sqnr(ref, plain.program(x)) + 6.0


def test_per_layer_null_leaves_a_group_unsmoothed_and_a_glob_sets_its_alpha():
    from edgekit.quant.graph.smooth import smooth_quant

    torch.manual_seed(0)
    model, spec = PreLN().eval(), TensorSpec("x", ("batch", 6, 32))
    data = np.random.default_rng(0).standard_normal((16, 6, 32)).astype(np.float32)
    gm = _captured(model, spec, data)
    info = smooth_quant(gm, _batches(data), SmoothQuantSpec(per_layer={"f?": None}), symmetric=False)
    assert info["kept (per_layer: null)"] == 1 and torch.equal(
        dict(gm.named_parameters())["ln.weight"], model.ln.weight
    )
    gm = _captured(model, spec, data)
    info = smooth_quant(gm, _batches(data), SmoothQuantSpec(per_layer={"fc": 0.25}), symmetric=False)
    assert info["alphas"] == {"fc": 0.25} and info["layer_norm"] == 1


class DepthwiseNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(torch.relu(self.stem(x)))


def test_bias_correction_reduces_the_mean_output_error():
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    data = (np.random.default_rng(0).random((32, 3, 10, 10)) * 2).astype(np.float32)
    spec = TensorSpec("x", ("batch", 3, 10, 10))
    x = torch.from_numpy(data)
    with torch.no_grad():
        ref = model(x)
        errors = {}
        for bc in (False, True):
            res = _quantize(model, spec, data, bias_correction=bc)
            errors[bc] = float((res.program(x) - ref).mean((0, 2, 3)).abs().mean())
    assert res.info["bias_correction"]["layers"] == 2
    assert errors[True] < 0.5 * errors[False], errors


def test_mse_weight_clipping_scales_are_smaller_and_the_weight_error_lower():
    from torchao.quantization.pt2e import PerChannelMinMaxObserver

    from edgekit.quant.graph.clipping import MseClipPerChannelObserver

    torch.manual_seed(0)
    # int8 grids gain from clipping only when many weights share the grid and few sit above the clip: uniform
    # weights in [-1, 1] and one at 1.1 per channel (MSE clips near 1.0)
    w = torch.rand(12, 16384) * 2 - 1
    w[:, 0] = 1.1
    kw = dict(dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=0)
    scales = {}
    for name, cls in (("minmax", PerChannelMinMaxObserver), ("mse", MseClipPerChannelObserver)):
        obs = cls(**kw)
        obs(w)
        scales[name] = obs.calculate_qparams()[0]
    assert torch.all(scales["mse"] <= scales["minmax"] + 1e-12) and torch.any(scales["mse"] < scales["minmax"])

    def mse(s):
        return float(((w / s[:, None]).round().clamp(-127, 127) * s[:, None] - w).pow(2).mean())

    assert mse(scales["mse"]) < mse(scales["minmax"])


def test_mse_weight_clipping_in_the_graph_quantizer(block):
    model, spec, data = block
    enc = {c: _quantize(model, spec, data, weight_clipping=c).encodings for c in WeightClipping}
    keys = [k for k in enc[WeightClipping.MINMAX].tensors if k.endswith(".weight")]
    assert keys
    for k in keys:
        mse, mm = enc[WeightClipping.MSE][k].scale, enc[WeightClipping.MINMAX][k].scale
        assert all(a <= b * (1 + 1e-6) for a, b in zip(mse, mm, strict=True)), k


BASE = {"name": "g", "model": {"source": "vit"}, "targets": [{"name": "onnx", "precisions": ["fp32"]}]}


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"smooth_quant": {"alpha": 1.5}}, r"smooth_quant\.alpha must be a number in \[0, 1\]"),
        ({"smooth_quant": 2}, r"smooth_quant\.alpha must be a number in \[0, 1\]"),
        ({"smooth_quant": {"alpha": "best"}}, r"in \[0, 1\] or 'auto', got 'best'"),
        ({"smooth_quant": {"per_layer": {"*.fc": -1}}}, r"smooth_quant\.per_layer\.\*\.fc"),
        ({"smooth_quant": {"unfoldable": "mul"}}, r"'mul' is not valid"),
        ({"weight_clipping": "mes"}, r"weight_clipping: 'mes' is not valid \(did you mean 'mse'"),
        ({"bias_correction": "yes"}, r"bias_correction: expected bool"),
        ({"quantizer": "native", "smooth_quant": 0.5}, r"native does not take quantization\.smooth_quant: .*edgekit"),
        (
            {"quantizer": "native", "weight_clipping": "mse"},
            r"quantizer native does not take quantization\.weight_clip",
        ),
        ({"quantizer": "neural-compressor", "bias_correction": True}, r"neural-compressor does not take .*bias_corr"),
    ],
)
def test_bad_option_values_are_one_line_recipe_errors(quant, message):
    with pytest.raises(RecipeError, match=message) as info:
        recipe_from_dict({**BASE, "quantization": quant})
    assert "\n" not in str(info.value)


def test_recipe_check_catches_a_bad_smooth_quant_and_takes_a_good_one(run_cli, tmp_path):
    good = {"smooth_quant": {"alpha": "auto", "unfoldable": "multiply"}, "bias_correction": True}
    code, out, err = run_cli("recipe", "check", write_yaml(tmp_path / "ok.yaml", {**BASE, "quantization": good}))
    assert code == 0 and "ok" in out, err
    bad = {**good, "smooth_quant": {"alpha": 7}}
    code, _, err = run_cli("recipe", "check", write_yaml(tmp_path / "bad.yaml", {**BASE, "quantization": bad}))
    assert code != 0 and "smooth_quant.alpha must be a number in [0, 1]" in err


def test_run_with_all_four_passes_lowers_to_onnx_and_openvino(run_cli, tmp_path):
    from .conftest import TINY_VIT

    quant = {
        "calibration": {"source": "digits", "split": "train", "samples": 32},
        "smooth_quant": {"alpha": "auto", "unfoldable": "multiply"},
        "bias_correction": True,
        "weight_clipping": "mse",
        "weight_rounding": {},
    }
    recipe = {
        "name": "smooth-vit",
        "model": {"source": "vit", "config": dict(TINY_VIT)},
        "inputs": [{"name": "pixel_values", "shape": ["batch", 1, 8, 8]}],
        "quantization": quant,
        "targets": [{"name": "onnx", "precisions": ["int8"]}, {"name": "openvino", "precisions": ["int8"]}],
        "validation": {"data": {"source": "digits", "split": "test", "samples": 50}, "budget": 100.0},
        "benchmark": {"warmup": 1, "iterations": 2},
    }
    out = tmp_path / "runs"
    code, _, err = run_cli("run", write_yaml(tmp_path / "r.yaml", recipe), "--out", out, "--no-bench")
    assert code == 0, err
    import json

    report = json.loads(next(out.rglob("report.json")).read_text())
    cal = report["calibration"]
    # HF ViT is pre-LN: both LayerNorms fold exactly; attention output and MLP output get a multiply
    assert cal["smooth_quant"]["layer_norm"] == 2 * TINY_VIT["num_hidden_layers"]
    assert cal["smooth_quant"]["fp32_max_rel_change"] < 1e-4
    assert cal["bias_correction"]["layers"] > 0 and cal["weight_clipping"].startswith("mse")
    assert cal["weight_rounding"]["scope"] == "all" and cal["weight_rounding"]["layers"]
    for row in report["rows"]:
        assert row["status"] == "ok", row
        assert row["accuracy"]["sqnr_vs_sim_db"] > 30.0, row["target"]
