"""edgekit's quantizer, ``weight_rounding`` (Hessian-aware GPTQ rounding after convert): its im2col rows, the rounding's
output error, the pass on a small conv net, and its recipe checks."""

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
    RoundingScope,
    TensorSpec,
    WeightRoundingSpec,
    recipe_from_dict,
)

pytest.importorskip("torchao.quantization.pt2e")

aten = torch.ops.aten


class _Node:
    """The two things :func:`input_rows` reads from a graph node: its target and its args."""

    def __init__(self, target, args):
        self.target, self.args = target, args


@pytest.mark.parametrize(
    ("op", "x_shape", "w_shape", "args"),
    [
        (aten.conv2d.default, (2, 6, 9, 8), (4, 3, 3, 3), ([2, 1], [1, 0], [1, 2], 2)),  # grouped, strided, dilated
        (aten.conv2d.default, (2, 4, 7, 7), (4, 1, 3, 3), ([1, 1], [1, 1], [1, 1], 4)),  # depthwise
        (aten.conv1d.default, (3, 4, 11), (6, 4, 3), ([2], [1], [1], 1)),
        (aten.conv2d.default, (2, 3, 5, 5), (5, 3, 1, 1), ()),  # the defaults: stride 1, no padding
    ],
)
def test_input_rows_times_the_weight_are_the_layer_output(op, x_shape, w_shape, args):
    from edgekit.quant.graph.rounding import input_rows

    torch.manual_seed(0)
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    ref = op(x, w, None, *args)
    rows = input_rows(_Node(op, (None, None, None, *args)), x, w)  # groups x rows x d
    groups = rows.shape[0]
    out = rows @ w.reshape(groups, w.shape[0] // groups, -1).transpose(1, 2)  # groups x rows x out/groups
    # conv rows are (image, position); channels are (group, channel in group)
    got = out.reshape(groups, x.shape[0], -1, w.shape[0] // groups).permute(1, 0, 3, 2)
    torch.testing.assert_close(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


def test_gptq_rounding_has_less_output_error_than_nearest_on_correlated_inputs():
    from edgekit.quant.graph.rounding import gptq_round

    rng = np.random.default_rng(0)
    # 27 inputs that move together (an image patch: one brightness plus a little detail)
    x = rng.standard_normal((4000, 1)) + 0.1 * rng.standard_normal((4000, 27))
    h = torch.from_numpy(x.T @ x)[None]
    w = torch.from_numpy(rng.standard_normal((1, 16, 27)))
    scale = w.abs().amax(-1, keepdim=True) / 127
    q = gptq_round(w, scale, h, -127, 127, damp=0.01)
    assert torch.equal(q, q.round()) and q.abs().max() <= 127

    def err(ints):
        e = w - ints * scale
        return float((e * (e @ h)).sum())

    assert err(q) < 0.2 * err(torch.round(w / scale))


class Stem(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(8, 4)
        with torch.no_grad():  # one large weight per channel: a coarse grid for the other 26
            self.stem.weight[:, 0, 1, 1] = 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dw(torch.relu(self.stem(x))).permute(0, 2, 3, 1))


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth images: a brightness per image plus low-frequency colour, correlated as photos' patches are."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n, 3, 4, 4)) * 0.3 + rng.standard_normal((n, 1, 1, 1))
    x = torch.from_numpy(coarse.astype(np.float32))
    return torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear").numpy()


def _quantize(model, data, **quant):
    from edgekit.quant.graph import graph_quantize

    spec = TensorSpec("x", ("batch", 3, 16, 16))
    bundle = ModelBundle(model, (spec,), family="custom", task="embedding", is_transformer=False)
    q = QuantSpec(calibration=DataSpec("given", batch_size=16), **quant)
    return graph_quantize(model, bundle, ["x"], DataSet({"x": data}, None, "t"), q)


def _int8_weight(program: torch.fx.GraphModule, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight attribute ``name`` as the program holds it, and as its Q/DQ gives it to the layer."""
    from edgekit.quant.graph.params import tensor_of
    from edgekit.quant.pt2e import _Q

    for node in program.graph.nodes:
        if node.target is _Q.quantize_per_channel.default and node.args[0].target == name:
            w = tensor_of(program, node.args[0])
            s = tensor_of(program, node.args[1]).reshape(-1, *[1] * (w.dim() - 1))
            return w, (w / s).round().clamp(-127, 127) * s
    raise AssertionError(f"{name} is not quantized")


def test_weight_rounding_lowers_the_stem_output_error_on_other_images_and_keeps_weights_on_their_grid():
    from edgekit.quant.graph.rounding import input_rows

    torch.manual_seed(0)
    model = Stem().eval()
    calib, other = _images(64, 0), torch.from_numpy(_images(64, 1))
    with torch.no_grad():
        plain = _quantize(model, calib, bias_correction=True)
        res = _quantize(model, calib, bias_correction=True, weight_rounding=WeightRoundingSpec())
        stem = _quantize(model, calib, weight_rounding=WeightRoundingSpec(layers=RoundingScope.INPUT))
        conv = _Node(aten.conv2d.default, (None, None, None, [2, 2], [1, 1], [1, 1], 1))
        rows = input_rows(conv, other, model.stem.weight)[0]  # images the rounding never saw

        def stem_error(r):
            w, wq = _int8_weight(r.program, "stem.weight")
            return float((rows @ (model.stem.weight - wq).reshape(8, -1).T).pow(2).mean()), w, wq

        (rounded, w, wq), (nearest, *_) = stem_error(res), stem_error(plain)
        assert rounded < 0.3 * nearest, (rounded, nearest)
        torch.testing.assert_close(w, wq, rtol=0, atol=1e-6)  # written on the grid: Q/DQ keeps the integers
        ref = model(other)
        assert float((res.program(other) - ref).pow(2).mean()) < float((plain.program(other) - ref).pow(2).mean())
    info = res.info["weight_rounding"]
    # every layer has more rows than inputs (the classifier: 64 images x 8 x 8 positions for 8), so all three are
    # re-rounded; the stem gains the most
    assert info["layers"] == ["stem/conv2d", "dw/conv2d_1", "fc/linear"] and info["output_error_reduction"][0] > 5
    assert stem.info["weight_rounding"]["layers"] == ["stem/conv2d"]


BASE = {"name": "g", "model": {"source": "vit"}, "targets": [{"name": "onnx", "precisions": ["fp32"]}]}


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"quantizer": "native", "weight_rounding": {}}, r"native does not take quantization\.weight_round"),
        ({"weight_rounding": {"layers": "stem"}}, r"'stem' is not valid"),
        ({"weight_rounding": {"damp": 0}}, r"weight_rounding\.damp must be > 0"),
    ],
)
def test_bad_weight_rounding_is_a_one_line_recipe_error(quant, message):
    with pytest.raises(RecipeError, match=message) as info:
        recipe_from_dict({**BASE, "quantization": quant})
    assert "\n" not in str(info.value)


def test_weight_rounding_from_a_recipe():
    r = recipe_from_dict({**BASE, "quantization": {"weight_rounding": {"layers": "input"}}})
    assert r.quantization.weight_rounding == WeightRoundingSpec(layers=RoundingScope.INPUT)
