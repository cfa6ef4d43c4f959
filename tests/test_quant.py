import numpy as np
import pytest
import torch

from edgekit.data.base import DataSet
from edgekit.quant import EncodingSet, calibrate
from edgekit.quant.encodings import Encoding, affine_from_range, weight_encoding
from edgekit.quant.fakequant import QuantWrapper, wrappers
from edgekit.quant.observers import ESTIMATORS, Observer
from edgekit.recipe import Estimator, QuantSpec


def test_affine_range_represents_zero_and_bounds():
    scale, zp, signed = affine_from_range(-1.0, 3.0, 8, symmetric=False)
    assert not signed and 0 <= zp <= 255
    enc = Encoding((scale,), (zp,), 8, False)
    x = np.array([-1.0, 0.0, 3.0], np.float32)
    np.testing.assert_allclose(enc.dequantize(enc.quantize(x)), x, atol=scale / 2 + 1e-7)
    assert enc.dequantize(enc.quantize(np.zeros(1, np.float32)))[0] == 0.0


def test_weight_encoding_is_per_channel_symmetric():
    w = np.stack([np.linspace(-1, 1, 16), np.linspace(-4, 2, 16)]).astype(np.float32)
    enc = weight_encoding(w)
    assert enc.axis == 0 and enc.symmetric
    np.testing.assert_allclose(enc.scale, [1 / 127, 4 / 127], rtol=1e-6)
    q = enc.quantize(w)
    assert q.dtype == np.int8 and q.min() >= -127


@pytest.mark.parametrize("estimator", [e.value for e in Estimator])
def test_estimators_stay_inside_minmax(estimator):
    obs = Observer()
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal(4096).astype(np.float32)
        x[0] = 40.0  # one outlier
        obs.update(torch.from_numpy(x))
    lo, hi = ESTIMATORS.get(estimator)(obs, QuantSpec(percentile=99.9))
    assert obs.lo <= lo < 0 < hi <= obs.hi
    if estimator in ("percentile", "entropy"):
        assert hi < 40.0  # the rare outlier is clipped


def _tiny_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def test_calibrate_writes_one_encoding_per_tensor(tmp_path):
    model = _tiny_mlp()
    data = DataSet({"x": np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)}, None, "rand")
    cal = calibrate(model, ["x"], data, QuantSpec(), batch_size=16, progress=False)
    assert sorted(cal.encodings.tensors) == ["0.input", "0.output", "0.weight", "2.input", "2.output", "2.weight"]
    assert len(wrappers(cal.sim)) == 2
    cal.encodings.save(tmp_path / "enc.json")
    assert EncodingSet.load(tmp_path / "enc.json").tensors == cal.encodings.tensors
    x = torch.from_numpy(data.inputs["x"])
    ref, sim = model(x), cal.sim(x)
    assert not torch.equal(ref, sim)  # quantization happened
    assert torch.nn.functional.cosine_similarity(ref, sim).min() > 0.99


def test_ignore_by_name_and_type():
    model = _tiny_mlp()
    data = DataSet({"x": np.ones((4, 8), np.float32)}, None, "ones")
    cal = calibrate(model, ["x"], data, QuantSpec(ignore=("2",)), progress=False)
    assert [w.qname for w in wrappers(cal.sim)] == ["0"]
    from edgekit.errors import CalibrationError

    with pytest.raises(CalibrationError, match="no quantizable layer"):
        calibrate(model, ["x"], data, QuantSpec(ignore=("type:Linear",)), progress=False)


def test_wrapper_exposes_wrapped_weight():
    lin = torch.nn.Linear(3, 2)
    w = QuantWrapper(lin, "lin")
    assert w.weight is lin.weight and w.bias is lin.bias


def test_scale_reparam_is_exact_in_fp32_and_helps_int8_with_outlier_channels():
    from edgekit.archs import load_model
    from edgekit.data import load_data
    from edgekit.metrics import sqnr_db
    from edgekit.quant.scale_reparam import equalize_norm_scales
    from edgekit.recipe import DataSpec, ModelSpec

    from .conftest import TINY_VIT

    bundle = load_model(ModelSpec("vit", TINY_VIT))
    with torch.no_grad():  # post-LN outlier channels, as trained transformers have
        for m in bundle.module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight[:2] *= 40.0
                m.bias[2:4] += 8.0
    data = load_data(DataSpec("digits", "train", samples=128), bundle)
    x = torch.from_numpy(data.inputs["pixel_values"])
    ref = bundle.module(x).detach()

    import copy

    rewritten = copy.deepcopy(bundle.module)
    info = equalize_norm_scales(rewritten, ["pixel_values"], data)
    assert info == {"norms_rescaled": 5, "norms_skipped": 0}
    torch.testing.assert_close(rewritten(x).detach(), ref, rtol=1e-4, atol=1e-4)

    plain = calibrate(bundle.module, ["pixel_values"], data, QuantSpec(), progress=False)
    reparam = calibrate(bundle.module, ["pixel_values"], data, QuantSpec(scale_reparam=True), progress=False)
    assert reparam.encodings.meta["scale_reparam"]["norms_rescaled"] == 5
    s_plain = sqnr_db(ref.numpy(), plain.sim(x).detach().numpy())
    s_reparam = sqnr_db(ref.numpy(), reparam.sim(x).detach().numpy())
    assert s_reparam > s_plain + 3.0, (s_plain, s_reparam)


def test_decomposed_form_matches_the_simulated_model():
    from edgekit.quant.fakequant import decomposed

    model = _tiny_mlp()
    data = DataSet({"x": np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32)}, None, "rand")
    for symmetric in (False, True):
        cal = calibrate(model, ["x"], data, QuantSpec(activation_symmetric=symmetric), progress=False)
        x = torch.from_numpy(data.inputs["x"])
        pt2e = decomposed(cal.sim)
        names = {str(n.target) for n in torch.export.export(pt2e, (x[:1],)).graph.nodes}
        assert any("quantize_per_tensor" in n for n in names) and any("dequantize_per_channel" in n for n in names)
        # same input/weight quantization; the extra output Q/DQ moves results by at most one output step
        out_step = max(cal.encodings[k].scale[0] for k in ("0.output", "2.output"))
        assert float((pt2e(x) - cal.sim(x)).abs().max()) < 4 * out_step


class _SamePadConv(torch.nn.Conv2d):
    """A Conv2d subclass that pads in its own forward (TF "same"), as EfficientNet-Lite's convolutions do."""

    def forward(self, x):
        return super().forward(torch.nn.functional.pad(x, (0, 1, 0, 1)))


def test_conv_subclass_keeps_its_own_forward_when_quantized():
    torch.manual_seed(0)
    model = torch.nn.Sequential(_SamePadConv(3, 8, 2), torch.nn.ReLU(), _SamePadConv(8, 4, 2)).eval()
    x = torch.randn(16, 3, 9, 9)
    data = DataSet({"x": x.numpy()}, None, "random")
    cal = calibrate(model, ["x"], data, QuantSpec(), batch_size=8, progress=False)
    assert len(wrappers(cal.sim)) == 2 and len(cal.encodings) >= 4
    with torch.no_grad():
        ref, sim = model(x), cal.sim(x)
    assert sim.shape == ref.shape == (16, 4, 9, 9)  # the padding ran: without it the shapes shrink
    sqnr = 10 * torch.log10(ref.pow(2).mean() / (ref - sim).pow(2).mean())
    assert 20 < sqnr < 80  # quantized (not identical), and close
    assert torch.equal(model[0].weight, cal.sim[0].layer.weight)  # the swap left the float weight in place
