"""Data-parallel training through Ray Train (torch DDP; gloo on CPU here: the GPU/NCCL path cannot run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgekit.archs import load_model
from edgekit.errors import EdgekitError, RecipeError
from edgekit.recipe import recipe_from_dict
from edgekit.sweep import run_sweep, sweep_from_dict

from .conftest import TINY_VIT

TREE = Path(__file__).resolve().parent.parent
ONNX_FP32 = [{"name": "onnx", "precisions": ["fp32"]}]


def ddp_sweep() -> dict:
    return {
        "name": "ddp",
        "models": [{"source": "vit", "name": "tiny-vit", "config": dict(TINY_VIT)}],
        "targets": ["onnx"],
        "precisions": ["fp32"],
        "overrides": {"validation": {"source": "digits", "split": "test", "samples": 50}, "benchmark": False},
        # 0.5 CPU for the job and for each of its two train workers: fits the 2-CPU test cluster
        "resources": {"num_cpus": 0.5, "train_workers": 2},
    }


def test_sweep_job_trains_data_parallel_on_two_workers(ray_cluster, tmp_path):
    doc = ddp_sweep()
    train = {"data": {"source": "digits", "split": "train"}, "steps": 30, "batch_size": 32, "lr": 0.003}
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(
        json.dumps({"model": {"source": "vit", "config": TINY_VIT}, "train": train, "targets": ONNX_FP32})
    )
    doc["models"] = [{"recipe": str(recipe_file), "name": "tiny-vit"}]
    result = run_sweep(sweep_from_dict(doc), TREE, tmp_path / "out", "ray", progress=False)
    (row,) = result.report["rows"]
    assert row["status"] == "ok", row
    run = tmp_path / "out" / row["job"]
    report = json.loads((run / "report.json").read_text())
    info = report["train"]
    assert info["distributed"]["workers"] == 2 and info["distributed"]["backend"] == "gloo"
    assert info["steps"] == 30 and info["shard_samples"] == 719  # half of the 1437 digits training images
    curve = [loss for _, loss in info["loss_curve"]]
    assert curve[-1] < curve[0]  # it learned
    weights = run / "model" / "weights.pt"
    assert "model/weights.pt" in json.loads((run / "manifest.json").read_text())["files"]
    assert report["model"]["weights"] == str(weights)
    recipe = recipe_from_dict({"name": "t", "model": {"source": "vit", "config": dict(TINY_VIT)}, "targets": ONNX_FP32})
    model = load_model(recipe.model).module
    init = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(torch.load(weights, weights_only=True))  # the weights fit the recipe's model
    assert any(not torch.equal(v, init[k]) for k, v in model.state_dict().items())


def test_data_parallel_needs_ray_and_a_train_section(ray_cluster, tmp_path):
    from edgekit.train.distributed import ddp_train

    recipe = recipe_from_dict({"name": "t", "model": {"source": "vit", "config": dict(TINY_VIT)}, "targets": ONNX_FP32})
    with pytest.raises(EdgekitError, match="no train: section"):
        ddp_train(recipe, tmp_path, workers=2)
    doc = ddp_sweep()
    doc["models"] = [{"recipe": "recipes/vit.yaml"}]
    with pytest.raises(RecipeError, match="--executor ray"):
        run_sweep(sweep_from_dict(doc), TREE, tmp_path / "local", "local", progress=False)
