"""σReparam: γ init keeps the function, power iteration finds the spectral norm, the fold is exact, layer choice;
attention entropy: known distributions, per layer on real models, tracked in training and shown in the report."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.data import DataSet
from edgekit.errors import RecipeError
from edgekit.nn.sites import transformer_sites
from edgekit.pipeline import run_recipe
from edgekit.recipe import DataSpec, TrainSpec, recipe_from_dict
from edgekit.train.entropy import attention_entropy, row_entropy
from edgekit.train.trainer import train
from edgekit.transforms import TransformResult, get_transform
from edgekit.transforms.sigma_reparam import SigmaReparamLinear, select_linears

from .conftest import TINY_VIT, bundle

TINY_TNT = {"inner_dim": 8, "dim": 16, "heads": 2, "depth": 1}


def _apply(model: nn.Module, options: dict | None = None) -> TransformResult:
    return get_transform("sigma_reparam").apply(model, options)


def _images(n: int = 8, side: int = 28) -> torch.Tensor:
    return torch.randn(n, 1, side, side, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("source,config,side", [("vit", TINY_VIT, 8), ("tnt", TINY_TNT, 28)], ids=["vit", "tnt"])
def test_gamma_init_keeps_the_function(source, config, side):
    b = bundle(source, config)
    x = _images(4, side)
    with torch.no_grad():
        ref = b.module.eval()(x)
        result = _apply(copy.deepcopy(b.module))
        model = result.model.eval()
        out = model(x)
    n = sum(isinstance(m, SigmaReparamLinear) for m in model.modules())
    assert n == result.info["linears_reparameterized"] == sum(isinstance(m, nn.Linear) for m in b.module.modules())
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_power_iteration_converges_to_the_spectral_norm():
    torch.manual_seed(0)
    lin = nn.Linear(24, 16)
    layer = SigmaReparamLinear(lin, init_iterations=1)
    true = float(torch.linalg.matrix_norm(lin.weight.detach(), 2))
    first = float(layer.sigma())
    layer.train()
    for _ in range(200):  # one power-iteration step per training forward
        layer(torch.randn(2, 24))
    assert abs(float(layer.sigma()) - true) / true < 1e-4
    assert abs(first - true) > abs(float(layer.sigma()) - true)  # it moved toward the true norm
    u, v = layer.u.clone(), layer.v.clone()
    layer.eval()
    layer(torch.randn(2, 24))
    assert torch.equal(u, layer.u) and torch.equal(v, layer.v)  # eval mode never updates the buffers


def test_sigma_reparam_learns_gamma_and_normalizes_by_sigma():
    torch.manual_seed(0)
    layer = SigmaReparamLinear(nn.Linear(8, 8), init_iterations=100)
    layer.train()
    layer(torch.randn(4, 8)).square().sum().backward()
    assert layer.gamma.grad is not None and layer.weight.grad is not None
    with torch.no_grad():  # W' has spectral norm gamma (up to the estimate)
        layer.gamma.fill_(0.5)
        assert abs(float(torch.linalg.matrix_norm(layer.effective_weight(), 2)) - 0.5) < 1e-3


def test_fold_is_exact_and_leaves_plain_linears():
    b = bundle("tnt", TINY_TNT)
    model = _apply(b.module).model
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # train so gamma, W and the buffers move away from their initial values
        opt.zero_grad()
        model(_images()).square().mean().backward()
        opt.step()
    model.eval()
    x = _images(4)
    with torch.no_grad():
        before = model(x)
        result = get_transform("sigma_reparam_fold").apply(model)
        folded = result.model
        after = folded(x)
    assert not any(isinstance(m, SigmaReparamLinear) for m in folded.modules())
    assert not any("gamma" in n or n.endswith((".u", ".v")) for n, _ in folded.named_parameters())
    assert result.info["linears_folded"] > 0
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_layer_selection_and_option_errors():
    model = bundle("vit", TINY_VIT).module
    every = select_linears(model, "all")
    attention, mlp = select_linears(model, "attention"), select_linears(model, "mlp")
    assert attention and mlp and not set(attention) & set(mlp)
    assert all(".attention." in n for n in attention) and all(".attention." not in n for n in mlp)
    assert set(attention) | set(mlp) < set(every)  # the classifier is neither
    assert select_linears(model, "all", "*query") == [n for n in every if n.endswith("query")]
    with pytest.raises(RecipeError, match="layers must be one of"):
        _apply(copy.deepcopy(model), {"layers": "convs"})
    with pytest.raises(RecipeError, match="transform sigma_reparam: options: unknown key 'layer'"):
        _apply(copy.deepcopy(model), {"layer": "all"})
    with pytest.raises(RecipeError, match="no Linear layer"):
        _apply(copy.deepcopy(model), {"pattern": "*nothing*"})
    with pytest.raises(RecipeError, match="list sigma_reparam"):
        get_transform("sigma_reparam_fold").apply(copy.deepcopy(model))


def test_unknown_option_fails_before_training(tmp_path):
    recipe = recipe_from_dict(
        {
            "name": "bad",
            "model": {"source": "vit", "config": dict(TINY_VIT)},
            "transforms": [{"name": "sigma_reparam", "options": {"pattren": "*"}}],
            "targets": [{"name": "onnx", "precisions": ["fp32"]}],
        }
    )
    with pytest.raises(RecipeError, match="did you mean 'pattern'"):
        run_recipe(recipe, tmp_path / "run", log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_entropy_of_known_distributions():
    t = 7
    uniform = torch.full((2, 3, 5, t), 1.0 / t)
    one_hot = torch.nn.functional.one_hot(torch.arange(5) % t, t).float().expand(2, 3, 5, t)
    assert torch.allclose(row_entropy(uniform), torch.full((2, 3, 5), math.log(t), dtype=torch.float64))
    assert torch.all(row_entropy(one_hot) == 0)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert abs(float(row_entropy(p)) - 1.5 * math.log(2)) < 1e-12


def _data(n: int, side: int) -> DataSet:
    x = _images(n, side).numpy()
    labels = (np.arange(n) % 10).astype(np.int64)
    return DataSet({"pixel_values": x}, labels, "random images")


def test_entropy_per_layer_uniform_when_attention_cannot_discriminate():
    # zero query weights: every score is 0, every attention row uniform over its T keys: entropy == log T
    b = bundle("crossvit", {"dims": [8, 16], "heads": [1, 2], "depths": [1, 1], "blocks": 1})
    for m in b.module.modules():
        if hasattr(m, "edgekit_native_attention"):
            nn.init.zeros_(m.query.weight)
            nn.init.zeros_(m.query.bias)
    res = attention_entropy(b.module, ["pixel_values"], _data(8, 28), batch_size=4)
    assert res["applicable"] and len(res["layers"]) == len(transformer_sites(b.module))
    for layer in res["layers"]:
        assert abs(layer["entropy"] - layer["uniform"]) < 1e-6, layer  # float32 softmax
    uniforms = {round(r["uniform"], 6) for r in res["layers"]}
    assert uniforms == {round(math.log(50), 6), round(math.log(17), 6)}  # 49+1 and 16+1 keys


@pytest.mark.parametrize("source,config", [("vit", TINY_VIT), ("fmvit", {"widths": [8, 16], "depths": [1, 1]})])
def test_entropy_found_in_hf_and_edgekit_attention(source, config):
    b = bundle(source, config)
    side = 8 if source == "vit" else 28
    res = attention_entropy(b.module, ["pixel_values"], _data(8, side), batch_size=4)
    assert res["applicable"] and len(res["layers"]) == len(transformer_sites(b.module)) > 0
    for layer in res["layers"]:
        assert 0 < layer["entropy"] <= layer["uniform"] + 1e-9


def test_entropy_tracked_during_training():
    b = bundle("tnt", TINY_TNT)
    model = _apply(b.module).model
    spec = TrainSpec(DataSpec("random"), steps=4, batch_size=4, lr=1e-3, checkpoint_every=0)
    res = train(model, ["pixel_values"], _data(16, 28), spec, progress=False)
    assert [s for s, _ in res.entropy_curve] == [s for s, _ in res.loss_curve] == [0, 1, 2, 3]
    assert all(len(h) == 2 and all(0 < x <= math.log(50) for x in h) for _, h in res.entropy_curve)


def test_recipe_reports_entropy_and_the_exact_fold(tmp_path):
    recipe = recipe_from_dict(
        {
            "name": "tnt-sigma",
            "model": {"source": "tnt", "config": TINY_TNT},
            "transforms": [
                {"name": "sigma_reparam", "options": {"layers": "attention"}},
                {"name": "sigma_reparam_fold"},
            ],
            "train": {
                "data": {"source": "fashion-mnist", "split": "train", "samples": 64},
                "steps": 2,
                "batch_size": 16,
            },
            "targets": [{"name": "onnx", "precisions": ["fp32"]}],
            "validation": {"data": {"source": "fashion-mnist", "split": "test", "samples": 32}, "budget": 100.0},
        }
    )
    result = run_recipe(recipe, tmp_path / "run", progress=False, benchmark=False, log=lambda *_: None)
    rep = result.report
    sigma, fold = rep["transforms"]
    assert sigma["exact"] and sigma["max_rel_diff"] < 1e-4 and sigma["changed"]["layers"] == "attention"
    assert fold["exact"] and fold["max_rel_diff"] < 1e-4 and fold["changed"]["linears_folded"] == 8
    assert rep["train"]["entropy"]["after"]["applicable"] and len(rep["train"]["entropy_curve"]) == 2
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Attention entropy per layer" in md and "blocks.0.inner" in md
    assert "Attention entropy per layer" in (tmp_path / "run" / "report.html").read_text()
