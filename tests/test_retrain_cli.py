"""`edgekit retrain`: train-phase transforms + training only, then `edgekit run` on its output."""

from __future__ import annotations

import json

import yaml

from .conftest import TINY_VIT, write_yaml


def retrain_recipe(**train) -> dict:
    return {
        "name": "tiny-retrain",
        "model": {"source": "vit", "config": dict(TINY_VIT)},
        "transforms": [{"name": "clipped_softmax", "options": {"gamma": -0.03}}],
        "train": {"data": {"source": "digits", "split": "train"}, "steps": 6, "batch_size": 32, **train},
        "targets": [{"name": "onnx", "precisions": ["fp32"]}],
        "validation": {"data": {"source": "digits", "split": "test", "samples": 64}, "budget": 100.0},
        "benchmark": {"warmup": 1, "iterations": 2},
    }


def test_retrain_then_run_uses_the_trained_weights(tmp_path, run_cli):
    recipe = write_yaml(tmp_path / "r.yaml", retrain_recipe(checkpoint_every=2))  # checkpoints at steps 2 and 4
    code, out, err = run_cli("retrain", recipe, "--out", tmp_path / "rt")
    assert code == 0, err
    rep = json.loads((tmp_path / "rt" / "retrain.json").read_text())
    assert rep["train"]["objective"] == "labels" and rep["train"]["steps"] == 6
    after = rep["train"]["outliers"]["after"]
    assert after["applicable"] and len(after["layers"]) == 2
    assert "## Outliers" in (tmp_path / "rt" / "report.md").read_text()
    assert not (tmp_path / "rt.ckpt").exists()  # checkpoints are removed once training finished
    follow = yaml.safe_load((tmp_path / "rt" / "recipe.yaml").read_text())
    assert follow["train"] is None and follow["model"]["weights"].endswith("rt/model/weights.pt")
    code, out, err = run_cli("run", tmp_path / "rt" / "recipe.yaml", "--out", tmp_path / "run", "--no-bench")
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["model"]["weights"].endswith("weights.pt")
    assert report["transforms"][0]["changed"]["kind"] == "clipped_softmax"


def test_retrain_by_distillation_from_the_original_model(tmp_path, run_cli):
    data = retrain_recipe(distill={"outputs": 1.0, "hidden": 1.0}, steps=4)
    data["transforms"] = [{"name": "gated_attention", "options": {"pi_init": 0.9}}]
    code, _, err = run_cli("retrain", write_yaml(tmp_path / "r.yaml", data), "--out", tmp_path / "rt")
    assert code == 0, err
    rep = json.loads((tmp_path / "rt" / "retrain.json").read_text())
    assert rep["train"]["objective"] == "distill"
    assert rep["train"]["outliers"]["before_is"] == "teacher"
    assert rep["validation"]["before_is"] == "original model"


def test_retrain_errors_are_one_line_and_leave_nothing(tmp_path, run_cli):
    no_train = retrain_recipe()
    del no_train["train"]
    code, _, err = run_cli("retrain", write_yaml(tmp_path / "a.yaml", no_train), "--out", tmp_path / "a")
    assert code == 2 and "no train: section" in err and not (tmp_path / "a").exists()
    code, _, err = run_cli(
        "retrain", write_yaml(tmp_path / "b.yaml", retrain_recipe()), "--out", tmp_path / "b", "--resume"
    )
    assert code == 2 and "no checkpoint" in err and not (tmp_path / "b").exists()
    bad = retrain_recipe(distill={"outputs": 0.0})
    code, _, err = run_cli("retrain", write_yaml(tmp_path / "c.yaml", bad), "--out", tmp_path / "c")
    assert code == 2 and "distill weights" in err and len(err.strip().splitlines()) == 1


def test_run_with_distillation_reports_outliers(tmp_path, run_cli):
    data = retrain_recipe(distill={"outputs": 1.0}, steps=3)
    code, _, err = run_cli("run", write_yaml(tmp_path / "r.yaml", data), "--out", tmp_path / "run", "--no-bench")
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["train"]["objective"] == "distill" and report["train"]["outliers"]["before_is"] == "teacher"
    md = (tmp_path / "run" / "report.md").read_text()
    assert "Training (distill): 3 steps" in md and "| original (teacher) |" in md
    assert (tmp_path / "run" / "model" / "weights.pt").is_file()
