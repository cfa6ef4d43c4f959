"""Reparameterization, BN folding and Unified Normalization: exact where they claim to be, and structural."""

from __future__ import annotations

import dataclasses
import io
import json

import onnx
import pytest
import torch
from torch import nn

import edgekit
from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.errors import RecipeError
from edgekit.recipe import DataSpec, ModelSpec, recipe_from_dict
from edgekit.targets.onnx_export import export_onnx, op_counts
from edgekit.transforms import TRANSFORMS, check_transform, get_transform
from edgekit.transforms.consumers import example_inputs
from edgekit.transforms.unified_norm import ChannelAffine, UnifiedNorm, padding_mask

from .conftest import TINY_VIT

REP_FAMILIES = ["repvgg", "mobileone", "fastvit"]


def _randomize_stats(model: nn.Module) -> None:
    """Train-mode passes and random BN affines, so folding has non-trivial numbers to get right."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
        if hasattr(m, "lam"):
            m.lam.data.uniform_(0.1, 1.0)
    model.eval()


def _onnx_ops(bundle, tmp_path) -> dict[str, int]:
    return op_counts(export_onnx(bundle.module, bundle, tmp_path / "m.onnx"))


def _assert_exact(before: torch.Tensor, after: torch.Tensor) -> None:
    rel = float((after - before).abs().max() / before.abs().max())
    assert rel < 1e-4, rel


@pytest.mark.parametrize("family", REP_FAMILIES)
def test_reparameterize_is_exact_and_leaves_single_convs(family, tmp_path):
    bundle = load_model(ModelSpec(family))
    _randomize_stats(bundle.module)
    real = torch.from_numpy(load_data(DataSpec("fashion-mnist", "test", samples=32), bundle).inputs["pixel_values"])
    rand = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        before = [bundle.module(real), bundle.module(rand)]
    ops_before = _onnx_ops(bundle, tmp_path)
    get_transform("reparameterize").apply(bundle.module)
    with torch.no_grad():
        after = [bundle.module(real), bundle.module(rand)]
    for b, a in zip(before, after):
        _assert_exact(b, a)
    ops = _onnx_ops(bundle, tmp_path)
    assert "BatchNormalization" not in ops
    assert ops["Conv"] < ops_before["Conv"]
    n_blocks = sum(1 for m in bundle.module.modules() if getattr(m, "fused", None) is not None)
    if family in ("repvgg", "mobileone"):
        assert "Add" not in ops  # every Add was a branch sum
        assert ops["Conv"] == n_blocks
    else:  # FastViT keeps its residual adds (ConvFFN), RepMixer branches are gone
        assert ops.get("Add", 0) < ops_before.get("Add", 0)


class _ConvBNNet(nn.Module):
    """Not an nn.Sequential: folding must come from the traced graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc, self.bn3 = nn.Linear(8, 4), nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x)) + x
        return self.bn3(self.fc(x.mean((2, 3))))


@pytest.mark.parametrize("make", [_ConvBNNet, lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))])
def test_fold_batchnorm_any_model(make, tmp_path):
    model = make()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 1, 8, 8) * 3 + 1)
    model.eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
        get_transform("fold_batchnorm").apply(model)
        after = model(x)
    _assert_exact(before, after)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=18)
    assert "BatchNormalization" not in op_counts(onnx.load_from_string(buf.getvalue()))


def test_un_training_statistics_window_and_outlier_filter():
    un = UnifiedNorm(4, window=2, outlier_bound=0.5).train()
    x = torch.randn(3, 5, 4)
    y = un(x)  # warm-up: the current batch's second moment, no mean subtraction
    expected = x / torch.sqrt((x**2).mean((0, 1)) + un.eps)
    torch.testing.assert_close(y, expected)
    un(x)
    calm = un.running_var.clone()
    un(torch.randn(3, 5, 4) * 100)  # a spike: arithmetic >> geometric mean of the window -> skipped
    assert int(un.skipped) == 1
    torch.testing.assert_close(un.running_var, calm)
    un.eval()
    torch.testing.assert_close(un(x), x * un.weight / torch.sqrt(un.running_var + un.eps) + un.bias)


def test_un_padding_mask_excludes_padding():
    un = UnifiedNorm(2).train()
    x = torch.ones(1, 3, 2)
    x[0, 2] = 100.0  # padding token
    mask = torch.tensor([[1, 1, 0]])
    with padding_mask(un, mask):
        un(x)
    torch.testing.assert_close(un.history[-1], torch.ones(2))


@pytest.mark.parametrize("family", ["vit", "deit", "swin", "convnext"])
def test_unified_norm_then_fuse_is_exact_and_removes_norm_ops(family, tmp_path):
    bundle = load_model(ModelSpec(family))
    get_transform("unified_norm").apply(bundle.module)
    x = torch.from_numpy(load_data(DataSpec("fashion-mnist", "train", samples=64), bundle).inputs["pixel_values"])
    bundle.module.train()
    with torch.no_grad():
        for i in range(6):
            bundle.module(x[i * 8 : (i + 1) * 8])
    bundle.module.eval()
    with torch.no_grad():
        before = bundle.module(x)
        with example_inputs((x[:4],)):
            get_transform("fuse_norm").apply(bundle.module)
        after = bundle.module(x)
    _assert_exact(before, after)
    assert not any(isinstance(m, (UnifiedNorm, nn.LayerNorm)) for m in bundle.module.modules())
    ops = _onnx_ops(bundle, tmp_path)
    for op in ("LayerNormalization", "Sqrt", "ReduceL2"):  # a norm, fused or decomposed, needs a root
        assert op not in ops, (op, ops)
    assert ops.get("ReduceMean", 0) <= (1 if family in ("swin", "convnext") else 0)  # only global pooling
    if family in ("vit", "deit"):  # pre-LN: every norm folds into the Linear layers that read it
        assert not any(isinstance(m, ChannelAffine) for m in bundle.module.modules())


def test_fuse_norm_keeps_post_ln_bert_as_affine():
    bundle = load_model(ModelSpec("bert", {"num_hidden_layers": 1}))
    get_transform("unified_norm").apply(bundle.module, {"outlier_filter": False})
    ids = torch.randint(0, 1000, (2, 8))
    args = (ids, torch.ones_like(ids))
    with torch.no_grad(), example_inputs(args):
        before = bundle.module(*args)
        result = get_transform("fuse_norm").apply(bundle.module)
        model = result.model
        assert result.info["kept_as_affine"] == 3  # each output also feeds a residual add
        _assert_exact(before, model(*args))


def test_unknown_transform_and_option(tiny_vit_recipe, tmp_path):
    tiny_vit_recipe["transforms"] = [{"name": "reparametrize"}]
    with pytest.raises(RecipeError, match="did you mean 'reparameterize'"):
        edgekit.run_recipe(recipe_from_dict(tiny_vit_recipe), tmp_path / "o", progress=False, log=lambda *_: None)
    assert not (tmp_path / "o").exists()


def test_recipe_with_un_training_and_reparam_reports_each_transform(tmp_path):
    common = {
        "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 64}},
        "targets": [{"name": "onnx", "precisions": ["fp32", "int8"]}],
        "validation": {"data": {"source": "digits", "split": "test"}, "budget": 100.0},
        "train": {"data": {"source": "digits", "split": "train"}, "epochs": 2, "batch_size": 64},
    }
    vit = dict(TINY_VIT)
    run = edgekit.run_recipe(
        recipe_from_dict(
            {
                "name": "un",
                "model": {"source": "vit", "config": vit},
                "transforms": [{"name": "unified_norm", "options": {"window": 2}}, {"name": "fuse_norm"}],
                **common,
            }
        ),
        tmp_path / "un",
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    names = [t["name"] for t in run.report["transforms"]]
    assert names == ["unified_norm", "fuse_norm"]
    fuse = run.report["transforms"][1]
    assert fuse["exact"] and fuse["max_rel_diff"] < 1e-4 and fuse["changed"]["norms_folded"] == 5
    assert (tmp_path / "un" / "model" / "weights.pt").is_file()
    assert "fuse_norm (norms_folded 5" in (tmp_path / "un" / "report.md").read_text()

    # re-export the trained UN model from its weights, without training
    again = edgekit.run_recipe(
        recipe_from_dict(
            {
                "name": "un2",
                "model": {"source": "vit", "config": vit, "weights": str(tmp_path / "un" / "model/weights.pt")},
                "transforms": [{"name": "unified_norm", "options": {"window": 2}}, {"name": "fuse_norm"}],
                **{k: v for k, v in common.items() if k != "train"},
            }
        ),
        tmp_path / "un2",
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    assert again.report["reference"]["fp32_torch"] == run.report["reference"]["fp32_torch"]

    rep = edgekit.run_recipe(
        recipe_from_dict(
            {
                "name": "mo",
                "model": {"source": "mobileone", "config": {"image_size": 8}},
                "transforms": [{"name": "reparameterize"}],
                **common,
            }
        ),
        tmp_path / "mo",
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    t = rep.report["transforms"][0]
    assert t["changed"]["blocks_fused"] == 11 and t["parameters_after"] < t["parameters_before"]
    report = json.loads((tmp_path / "mo" / "report.json").read_text())
    assert all(r["status"] == "ok" for r in report["rows"])


def test_every_transform_has_frozen_typed_options_with_defaults():
    get_transform("fuse_norm")  # imports every transform module
    for name in TRANSFORMS:
        t = get_transform(name)
        assert dataclasses.is_dataclass(t.options) and t.options.__dataclass_params__.frozen, name
        assert t.parse({}) == t.options() == t.parse(None)  # every option has a default
        assert t.parse(t.options()) == t.options()  # a typed object passes through


def test_check_transform_names_transform_and_key():
    assert check_transform("unified_norm", {"window": 2}).name == "unified_norm"
    assert get_transform("unified_norm").parse({"window": 2}).window == 2
    with pytest.raises(RecipeError, match=r"^transform unified_norm: options: unknown key 'windw' \(did you mean"):
        check_transform("unified_norm", {"windw": 2})
    with pytest.raises(RecipeError, match=r"^transform unified_norm: options.window: expected int, got '2'$"):
        check_transform("unified_norm", {"window": "2"})
    with pytest.raises(RecipeError, match=r"^transform reparameterize: options: unknown key 'x'"):
        check_transform("reparameterize", {"x": 1})


def test_unknown_option_fails_at_prepare_before_any_work(tiny_vit_recipe, tmp_path):
    tiny_vit_recipe["transforms"] = [{"name": "gated_attention", "options": {"pi_init": 1.5}}]
    with pytest.raises(RecipeError, match="transform gated_attention: options: pi_init must be in"):
        edgekit.run_recipe(recipe_from_dict(tiny_vit_recipe), tmp_path / "o", progress=False, log=lambda *_: None)
    assert not (tmp_path / "o").exists()
