"""edgekit's quantizer as one call (``edgekit.quant.calibrate``): encodings, estimators, ignore, scale reparam."""

import numpy as np
import pytest
import torch

from edgekit.data.base import DataSet
from edgekit.errors import CalibrationError
from edgekit.quant import EncodingSet, calibrate
from edgekit.quant.encodings import Encoding, affine_from_range
from edgekit.quant.observers import ESTIMATORS, Observer
from edgekit.recipe import Estimator, QuantSpec


def test_affine_range_represents_zero_and_bounds():
    scale, zp, signed = affine_from_range(-1.0, 3.0, 8, symmetric=False)
    assert not signed and 0 <= zp <= 255
    enc = Encoding((scale,), (zp,), 8, False)
    x = np.array([-1.0, 0.0, 3.0], np.float32)
    np.testing.assert_allclose(enc.dequantize(enc.quantize(x)), x, atol=scale / 2 + 1e-7)
    assert enc.dequantize(enc.quantize(np.zeros(1, np.float32)))[0] == 0.0


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


def test_entropy_ignores_the_zeros_of_a_relu():
    """After a ReLU/ReLU6 most values are exactly 0; in the |x| histogram that spike made the KL search clip the
    range to a sliver (EfficientNet-Lite1's ReLU6 outputs to [0, 0.37]: cosine 0.02)."""
    obs = Observer()
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = np.minimum(rng.exponential(0.3, 8192), 6.0)  # mostly small, 80% zeros, a few saturated at 6
        x[rng.random(8192) < 0.8] = 0.0
        x[:50] = 6.0
        obs.update(torch.from_numpy(x.astype(np.float32)))
    lo, hi = ESTIMATORS.get("entropy")(obs, QuantSpec())
    assert lo == 0.0 and hi > 3.0  # with the zeros in the histogram: 0.375


def _tiny_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def _data(n=64, seed=0):
    return DataSet({"x": np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)}, None, "rand")


def _weights(cal) -> list[str]:
    return sorted(k for k in cal.encodings.tensors if k.endswith(".weight"))


def test_calibrate_gives_a_program_and_one_encoding_per_tensor(tmp_path):
    model, data = _tiny_mlp(), _data()
    cal = calibrate(model, ["x"], data, QuantSpec())
    assert isinstance(cal.sim, torch.fx.GraphModule)
    # keyed by the producing module and the graph node; per-channel weights on their output axis
    assert _weights(cal) == ["0/linear.weight", "2/linear_1.weight"]
    assert cal.encodings["0/linear.weight"].axis == 0 and len(cal.encodings["0/linear.weight"].scale) == 16
    assert {"0/linear.input", "2/linear_1.input"} <= set(cal.encodings.tensors)
    cal.encodings.save(tmp_path / "enc.json")
    assert EncodingSet.load(tmp_path / "enc.json").tensors == cal.encodings.tensors
    x = torch.from_numpy(data.inputs["x"])
    ref, sim = model(x), cal.sim(x)
    assert not torch.equal(ref, sim)  # quantization happened
    assert torch.nn.functional.cosine_similarity(ref, sim).min() > 0.99
    assert cal.info["quantized_ops"] == {"linear": 2}


def test_ignore_by_name_and_type():
    model, data = _tiny_mlp(), _data(8)
    cal = calibrate(model, ["x"], data, QuantSpec(ignore=("2",)))
    assert _weights(cal) == ["0/linear.weight"]
    assert cal.info["ignored"] == {"patterns": ["2"], "nodes": ["2/linear_1"]}
    with pytest.raises(CalibrationError, match="no quantizable op"):
        calibrate(model, ["x"], data, QuantSpec(ignore=("type:Linear",)))


def test_quantize_outputs_adds_output_qdq_in_every_profile():
    model, data = _tiny_mlp(), _data()
    plain = calibrate(model, ["x"], data, QuantSpec())
    outputs = calibrate(model, ["x"], data, QuantSpec(quantize_outputs=True))
    # the first linear's output gets Q/DQ (its reader, the GELU, now reads a quantized tensor); the model's own
    # output (the second linear's) stays float
    assert set(outputs.encodings.tensors) - set(plain.encodings.tensors) == {"1/gelu.input"}
    assert outputs.info["outputs"].startswith("every quantized op's output")


def test_scale_reparam_is_exact_in_fp32_and_helps_int8_with_outlier_channels():
    from edgekit.archs import load_model
    from edgekit.data import load_data
    from edgekit.metrics import sqnr_db
    from edgekit.quant.graph.capture import capture
    from edgekit.quant.graph.scale_reparam import scale_reparam
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

    gm = capture(bundle.module, bundle, (x[:4],))
    info = scale_reparam(gm, lambda: [(x,)])
    # the LayerNorms in front of q/k/v and fc1 (2 per block); the final one feeds the pooler's slice, not linears
    assert info == {"norms_rescaled": 4, "norms_skipped": 0}
    torch.testing.assert_close(gm(x).detach(), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bundle.module(x).detach(), ref)  # the user's model is untouched

    names, spec = ["pixel_values"], QuantSpec()
    plain = calibrate(bundle.module, names, data, spec, bundle)
    reparam = calibrate(bundle.module, names, data, QuantSpec(scale_reparam=True), bundle)
    assert reparam.info["scale_reparam"]["norms_rescaled"] == 4
    s_plain = sqnr_db(ref.numpy(), plain.sim(x).detach().numpy())
    s_reparam = sqnr_db(ref.numpy(), reparam.sim(x).detach().numpy())
    assert s_reparam > s_plain + 3.0, (s_plain, s_reparam)


class _SamePadConv(torch.nn.Conv2d):
    """A Conv2d subclass that pads in its own forward (TF "same"), as EfficientNet-Lite's convolutions do."""

    def forward(self, x):
        return super().forward(torch.nn.functional.pad(x, (0, 1, 0, 1)))


def test_conv_subclass_keeps_its_own_forward_when_quantized():
    torch.manual_seed(0)
    model = torch.nn.Sequential(_SamePadConv(3, 8, 2), torch.nn.ReLU(), _SamePadConv(8, 4, 2)).eval()
    x = torch.randn(16, 3, 9, 9)
    data = DataSet({"x": x.numpy()}, None, "random")
    cal = calibrate(model, ["x"], data, QuantSpec())
    assert cal.info["quantized_ops"] == {"conv": 2}
    with torch.no_grad():
        ref, sim = model(x), cal.sim(x)
    assert sim.shape == ref.shape == (16, 4, 9, 9)  # the padding ran: without it the shapes shrink
    sqnr = 10 * torch.log10(ref.pow(2).mean() / (ref - sim).pow(2).mean())
    assert 20 < sqnr < 80  # quantized (not identical), and close


def test_public_quantize_returns_the_program_and_its_encodings():
    import edgekit

    program, encodings = edgekit.quantize(_tiny_mlp(), _data(), ["x"])
    assert isinstance(program, torch.fx.GraphModule) and len(encodings) >= 4
