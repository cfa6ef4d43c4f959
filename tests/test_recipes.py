"""Every shipped recipe runs end to end in reduced mode (``edgekit/reduced.py``): a broken recipe fails CI.

The parameter list is the content of recipes/, so a new recipe is covered without touching this file. Reduced
runs say nothing about accuracy (a few training steps, a few samples); they check that every stage, transform
and target of the recipe works, and that every artifact agrees with the PyTorch model it came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import edgekit
from edgekit.recipe import Precision, load_recipe
from edgekit.reduced import TINY, reduce_recipe

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def test_recipes_are_shipped():
    assert len(RECIPES) >= 13


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_end_to_end_reduced(path, tmp_path):
    recipe = load_recipe(path)
    result = edgekit.run_recipe(
        recipe, tmp_path / "run", reduced=True, progress=False, benchmark=False, log=lambda *_: None
    )
    report = result.report
    assert report["recipe"] == f"{recipe.name}-reduced"
    rows = {(r["target"], r["precision"]): r for r in report["rows"]}
    for spec in recipe.targets:  # every explicitly named target/precision has a built, validated row
        if spec.name != "all":
            assert {(spec.name, p.value) for p in spec.precisions} <= set(rows), spec.name
    assert [t["name"] for t in report["transforms"]] == [t.name for t in recipe.transforms]
    for (target, precision), r in rows.items():
        assert r["status"] in ("ok", "unsupported", "skipped"), (target, precision, r.get("notes"))
        if r["status"] != "ok":
            continue
        acc = r["accuracy"]
        if precision == Precision.FP32.value:
            assert acc["cosine_vs_fp32"] > 0.999, (target, acc)
        elif precision == Precision.INT8.value and r["quantizer"] == "edgekit":
            assert acc["cosine_vs_sim"] > 0.95, (target, acc)
    assert result.passed
    assert (tmp_path / "run" / "report.md").is_file()


def test_reduced_mode_shrinks_model_data_and_keeps_stage_counts():
    recipe = reduce_recipe(load_recipe(RECIPES[0].parent / "convnext.yaml"))
    assert recipe.model.config["hidden_sizes"] == [8, 16] and recipe.model.config["num_stages"] == 2
    assert recipe.train is not None and recipe.train.steps is not None and recipe.train.steps <= 5
    assert recipe.quantization.calibration is not None and recipe.quantization.calibration.samples <= 16
    assert recipe.validation.data is not None and recipe.validation.data.samples <= 64
    assert recipe.benchmark.iterations <= 5
    assert set(TINY) >= {"vit", "deit", "swin", "convnext", "poolformer", "cvt", "pvt_v2", "repvgg", "opt", "minilm"}
