"""TNT, CrossViT and FMViT: they build, export, expose their attention to the attention transforms (or refuse
where the math does not apply), and FMViT's multi-group reparameterization is exact."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgekit.archs.fmvit import MultiGroupRepConv
from edgekit.archs.tnt import words_of_patches
from edgekit.errors import ModelError, UnsupportedOpError
from edgekit.nn.attention import native_attention_modules
from edgekit.nn.fold import regroup
from edgekit.nn.sites import transformer_sites
from edgekit.targets.onnx_export import export_onnx, op_counts
from edgekit.transforms import get_transform

from .conftest import bundle

TINY = {
    "tnt": {"inner_dim": 8, "dim": 16, "heads": 2, "depth": 2},
    "crossvit": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 1], "blocks": 1},
    "fmvit": {"widths": [8, 16], "depths": [1, 1]},
}
ATTENTION_COUNT = {"tnt": 4, "crossvit": 4, "fmvit": 1}  # inner + outer per TNT block; 2 self + 2 cross


def _x(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("family", sorted(TINY))
def test_family_builds_and_exports_with_dynamic_batch(family, tmp_path):
    b = bundle(family, TINY[family])
    assert b.family == family and b.task == "classification" and b.inputs[0].name == "pixel_values"
    assert len(list(native_attention_modules(b.module))) == ATTENTION_COUNT[family]
    assert len(transformer_sites(b.module)) == ATTENTION_COUNT[family]
    export_onnx(b.module, b, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = _x(n)
        (out,) = sess.run(None, {"pixel_values": x.numpy()})
        np.testing.assert_allclose(out, _run(b.module, x).numpy(), rtol=1e-4, atol=1e-5)


def test_family_config_errors_are_typed():
    with pytest.raises(ModelError, match="no field"):
        bundle("tnt", {"depths": 2})
    with pytest.raises(ModelError, match="does not divide"):
        bundle("tnt", {"patch_size": 5})
    with pytest.raises(ModelError, match="two values"):
        bundle("crossvit", {"dims": [8, 16, 32]})
    with pytest.raises(ModelError, match="multiple of groups"):
        bundle("fmvit", {"widths": [6, 16]})


def test_words_are_the_pixels_of_each_patch():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    words = words_of_patches(x, 4)  # (2 * 4 patches, 16 words, 3 channels)
    ref = nn.functional.unfold(x, 4, stride=4)  # (B, C * 16, patches)
    ref = ref.reshape(2, 3, 16, 4).permute(0, 3, 2, 1).reshape(8, 16, 3)
    assert torch.equal(words, ref)


@pytest.mark.parametrize("family", sorted(TINY))
def test_softmax_variants_find_every_attention_module(family):
    b = bundle(family, TINY[family])
    x = _x()
    ref = _run(b.module, x)
    result = get_transform("clipped_softmax").apply(copy.deepcopy(b.module), {"gamma": 0.0, "zeta": 1.0})
    neutral = result.model
    assert result.info["attention_modules"] == ATTENTION_COUNT[family]
    torch.testing.assert_close(_run(neutral, x), ref, rtol=1e-5, atol=1e-5)  # gamma=0, zeta=1: plain softmax
    clipped = get_transform("clipped_softmax").apply(copy.deepcopy(b.module), {"gamma": -0.2}).model
    assert (_run(clipped, x) - ref).abs().max() > 1e-5
    gated = get_transform("gated_attention").apply(copy.deepcopy(b.module), {"pi_init": 0.5}).model
    assert all(m.edgekit_attention.kind == "gated_attention" for _, m, _, _ in native_attention_modules(gated))
    assert (_run(gated, x) - ref).abs().max() > 1e-5  # a gate of ~0.5 halves every head's context


def test_ecoformer_applies_to_self_attention_and_says_where_not():
    tnt = get_transform("ecoformer").apply(bundle("tnt", TINY["tnt"]).module, {"nbits": 8, "anchors": 4})
    assert tnt.info["attention_modules"] == 4 and "not_applied" not in tnt.info
    assert _run(tnt.model, _x()).isfinite().all()

    cv = get_transform("ecoformer").apply(bundle("crossvit", TINY["crossvit"]).module, {"nbits": 8, "anchors": 4})
    info = cv.info
    assert info["attention_modules"] == 2 and len(info["not_applied"]) == 2
    assert all("cross-attention" in why for why in info["not_applied"].values())
    assert _run(cv.model, _x()).isfinite().all()

    with pytest.raises(UnsupportedOpError, match=r"spatially reduced.*sr_ratio: 1"):
        get_transform("ecoformer").apply(bundle("fmvit", TINY["fmvit"]).module, {})
    fm = get_transform("ecoformer").apply(bundle("fmvit", {**TINY["fmvit"], "sr_ratio": 1}).module, {"anchors": 4})
    assert fm.info["attention_modules"] == 1


@pytest.mark.parametrize("groups,target", [(4, 1), (4, 2), (8, 8)])
def test_regroup_gives_the_same_convolution(groups, target):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=groups)
    x = torch.randn(2, 8, 5, 5)
    w = regroup(conv.weight.detach(), groups, target)
    torch.testing.assert_close(nn.functional.conv2d(x, w, conv.bias, padding=1, groups=target), conv(x))


def test_fmvit_reparameterize_is_exact_and_leaves_one_conv_per_block(tmp_path):
    b = bundle("fmvit", TINY["fmvit"])
    b.module.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics away from their init
            b.module(_x(8) * 2 + 0.5)
    for m in b.module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    x = _x(4)
    before = _run(b.module, x)
    ops_before = op_counts(export_onnx(b.module, b, tmp_path / "a.onnx"))
    blocks = [m for m in b.module.modules() if isinstance(m, MultiGroupRepConv)]
    get_transform("reparameterize").apply(b.module)
    after = _run(b.module, x)
    assert float((after - before).abs().max() / before.abs().max()) < 1e-5
    assert all(m.fused is not None and len(m.branches) == 0 and m.skip is None for m in blocks)
    assert all(m.fused.groups == 1 for m in blocks)  # the dense 1x1 branch makes the fused conv dense
    ops = op_counts(export_onnx(b.module, b, tmp_path / "b.onnx"))
    assert ops["Conv"] < ops_before["Conv"] and ops.get("Add", 0) < ops_before.get("Add", 0)
