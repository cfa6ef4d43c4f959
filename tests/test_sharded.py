"""Sharded validation: per-shard sums merged give the single-process numbers, on Ray workers and locally."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.metrics import compare
from edgekit.recipe import recipe_from_dict
from edgekit.sweep.sharded import validate_sharded
from edgekit.validate.shards import ShardStats, merge_all, shard_stats

from .conftest import TINY_VIT

KEYS = ("metric", "cosine_vs_fp32", "sqnr_db", "max_abs_diff", "agreement_vs_fp32")
SIM_KEYS = ("agreement_vs_sim", "cosine_vs_sim", "sqnr_vs_sim_db")


@pytest.mark.parametrize("metric", ["top1", "cosine"])
def test_merged_shards_equal_whole_set(metric):
    rng = np.random.default_rng(0)
    fp32 = rng.normal(size=(101, 10)).astype(np.float32)
    out = fp32 + rng.normal(scale=0.3, size=fp32.shape).astype(np.float32)
    sim = fp32 + rng.normal(scale=0.2, size=fp32.shape).astype(np.float32)
    labels = rng.integers(0, 10, 101) if metric == "top1" else None
    whole = compare(out, fp32, labels, metric, sim)
    parts = [slice(0, 7), slice(7, 60), slice(60, 101)]  # uneven
    merged = merge_all(
        [shard_stats(out[s], fp32[s], None if labels is None else labels[s], sim[s]) for s in parts]
    ).compare(metric)
    assert set(merged) == set(whole)
    for k, v in whole.items():
        assert merged[k] == (None if v is None else pytest.approx(v, rel=1e-12)), k


def test_shards_must_agree_on_labels():
    a = shard_stats(np.ones((2, 3)), np.ones((2, 3)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="disagree"):
        a.merge(shard_stats(np.ones((2, 3)), np.ones((2, 3))))
    with pytest.raises(ValueError, match="no samples"):
        ShardStats().compare("top1")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    recipe = recipe_from_dict(
        {
            "name": "tiny-vit",
            "model": {"source": "vit", "config": dict(TINY_VIT)},
            "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 64}},
            "targets": [{"name": "onnx", "precisions": ["fp32", "int8"]}, {"name": "openvino", "precisions": ["int8"]}],
            "validation": {"data": {"source": "digits", "split": "test", "samples": 90}, "budget": 100.0},
        }
    )
    out = tmp_path_factory.mktemp("shards") / "run"
    return out, edgekit.run_recipe(recipe, out, progress=False, benchmark=False, log=lambda *_: None).report


def check(rows, report, shards):
    built = [r for r in report["rows"] if r["status"] in ("ok", "fail")]
    assert [r["artifact"] for r in rows] == [r["artifact"] for r in built]
    for mine, theirs in zip(rows, built):
        assert mine["shards"] == shards and mine["samples"] == theirs["samples"] == 90
        keys = KEYS + (SIM_KEYS if "agreement_vs_sim" in theirs["accuracy"] else ())
        assert set(keys) <= set(mine["accuracy"])
        for k in keys:
            assert mine["accuracy"][k] == pytest.approx(theirs["accuracy"][k], rel=1e-9, abs=1e-12), k
        assert mine["delta"] == pytest.approx(theirs["delta"], abs=1e-9)


def test_sharded_validation_on_ray_equals_the_run(ray_cluster, tiny_run):
    out, report = tiny_run
    check(validate_sharded(out, 4, "ray"), report, 4)


def test_sharded_validation_locally_equals_the_run(tiny_run):
    out, report = tiny_run
    check(validate_sharded(out, 3, "local"), report, 3)
