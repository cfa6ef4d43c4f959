from pathlib import Path

import pytest

from edgekit.errors import RecipeError
from edgekit.recipe import DataSpec, Estimator, Precision, load_recipe, recipe_from_dict

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def test_unknown_key_suggests_the_close_one(tiny_vit_recipe):
    tiny_vit_recipe["quantization"]["estimater"] = "mse"
    with pytest.raises(RecipeError, match=r"quantization: unknown key 'estimater' \(did you mean 'estimator'\?\)"):
        recipe_from_dict(tiny_vit_recipe)


def test_bad_enum_value_is_named(tiny_vit_recipe):
    tiny_vit_recipe["targets"][0]["precisions"] = ["int4"]
    with pytest.raises(RecipeError, match=r"targets\[0\].precisions\[0\]: 'int4' is not valid"):
        recipe_from_dict(tiny_vit_recipe)


def test_int8_without_calibration_is_rejected(tiny_vit_recipe):
    del tiny_vit_recipe["quantization"]
    with pytest.raises(RecipeError, match="int8 needs calibration data"):
        recipe_from_dict(tiny_vit_recipe)


def test_round_trip_yaml(tiny_vit_recipe, tmp_path):
    r = recipe_from_dict({**tiny_vit_recipe, "quantization": {**tiny_vit_recipe["quantization"], "estimator": "mse"}})
    assert r.quantization.estimator is Estimator.MSE
    assert r.targets[0].precisions == (Precision.FP32, Precision.INT8)
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(path) == r


def test_data_spec_cli_forms():
    assert DataSpec.parse("fashion-mnist:train", samples=5) == DataSpec("fashion-mnist", "train", 5)
    assert DataSpec.parse("x/calib.npz").source == "npz"
    assert DataSpec.parse("t.csv").path == "t.csv"


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_are_valid(path, run_cli):
    code, out, err = run_cli("recipe", "check", path)
    assert code == 0, err
    assert "ok" in out


def test_recipes_command_lists_shipped(run_cli):
    code, out, _ = run_cli("recipes")
    assert code == 0 and "vit" in out
