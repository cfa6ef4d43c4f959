"""Accuracy-aware quantization on the graph: the node whose input carries an outlier channel stays in float."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

import edgekit
from edgekit.archs.base import ModelBundle
from edgekit.data import DataSet
from edgekit.recipe import AccuracyAwareSpec, Quantizer, QuantSpec, RankMetric, TensorSpec, recipe_from_dict

from .test_accuracy_aware import outlier_mlp

pytest.importorskip("torchao.quantization.pt2e")

FC2 = "fc2/linear_1"  # the graph node of fc2 (module / node), as encodings.json keys it


def _data(n: int, seed: int) -> DataSet:
    return DataSet({"x": np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)}, None, f"rng{seed}")


def _run(max_drop: float, profiles=("ort_ov",), **spec):
    from edgekit.quant.graph import graph_quantize_profiles
    from edgekit.quant.graph.accuracy_aware import RankingGoal

    model = outlier_mlp()
    bundle = ModelBundle(model, (TensorSpec("x", ("batch", 16)),), family="custom", task="classification")
    goal = RankingGoal(_data(64, 1), "cosine", max_drop, AccuracyAwareSpec(max_drop=max_drop, **spec))
    q = QuantSpec(quantizer=Quantizer.GRAPH)
    return graph_quantize_profiles(model, bundle, ["x"], _data(64, 0), q, profiles, goal, log=lambda *_: None)


def test_node_names_are_stable_across_captures_and_copies():
    from edgekit.quant.graph.annotate import EdgekitQuantizer, annotated_nodes
    from edgekit.quant.graph.capture import capture
    from edgekit.quant.graph.profiles import PROFILES

    model = outlier_mlp()
    bundle = ModelBundle(model, (TensorSpec("x", ("batch", 16)),), family="custom", task="classification")
    sample = (torch.randn(2, 16),)
    quantizer = EdgekitQuantizer(QuantSpec(quantizer=Quantizer.GRAPH), PROFILES.get("ort_ov"), False)
    first, second = capture(model, bundle, sample), capture(model, bundle, sample)
    names = [annotated_nodes(quantizer.annotate(g)) for g in (first, second, copy.deepcopy(first))]
    assert names[0] == names[1] == names[2] and FC2 in names[0]


def test_budget_violated_keeps_the_outlier_node_float_on_every_profile():
    results = _run(0.001, ("ort_ov", "full_integer"))
    rec = results["ort_ov"].info["accuracy_aware"]
    assert rec["needed"] and rec["within"] and rec["unit"] == "graph node"
    assert rec["ranking"][0]["layer"] == FC2 and rec["kept_fp32"] == [FC2]
    assert rec["drop_after"] <= 0.001 < rec["drop_before"]
    for res in results.values():  # fc2 has no Q/DQ in any profile: its weight and input stay float
        assert not any(k.startswith(f"{FC2}.") for k in res.encodings.tensors)
        assert any(k.startswith("fc1/") for k in res.encodings.tensors)
        assert res.encodings.meta["fp32_nodes"] == [FC2]


def test_within_budget_keeps_nothing():
    rec = _run(1.0)["ort_ov"].info["accuracy_aware"]
    assert not rec["needed"] and rec["kept_fp32"] == [] and rec["drop_before"] <= 1.0


def test_agreement_metric_and_recipe_run_report_it(tmp_path):
    recipe = recipe_from_dict(
        {
            "name": "graph-aa",
            "model": {"source": "tests.test_accuracy_aware:outlier_mlp"},
            "inputs": [{"name": "x", "shape": ["batch", 16]}],
            "quantization": {
                "quantizer": "graph",
                "calibration": {"source": "random", "samples": 64},
                "accuracy_aware": {"metric": "agreement", "max_drop": 0.0, "samples": 64, "max_layers": 2},
            },
            "targets": [{"name": "onnx"}],
            "validation": {"data": {"source": "random", "samples": 64, "seed": 9}, "budget": 0.002},
        }
    )
    assert recipe.quantization.accuracy_aware.metric is RankMetric.AGREEMENT
    result = edgekit.run_recipe(recipe, tmp_path / "out", progress=False, benchmark=False, log=lambda *_: None)
    aa = result.report["calibration"]["accuracy_aware"]
    assert aa["metric"] == "agreement" and aa["kept_fp32"][0] == FC2 and aa["drop_after"] <= aa["drop_before"]
    encodings = json.loads((tmp_path / "out" / "encodings.json").read_text())
    assert encodings["meta"]["fp32_nodes"] == sorted(aa["kept_fp32"])
    assert not any(k.startswith(f"{FC2}.") for k in encodings["tensors"])
    graph = onnx.load(str(tmp_path / "out" / "onnx" / "int8" / "model.onnx")).graph
    assert any(n.op_type == "DequantizeLinear" for n in graph.node)
