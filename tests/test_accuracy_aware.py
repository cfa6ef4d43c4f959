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
from edgekit.recipe import AccuracyAwareSpec, QuantSpec, RankMetric, RevertMethod, TensorSpec, recipe_from_dict

FC2 = "fc2/linear_1"  # the graph node of fc2 (module / node), as encodings.json keys it


class OutlierMLP(torch.nn.Module):
    """fc1 -> relu -> fc2 -> relu -> head. Channel 0 of fc2's input is scaled by 1e4 (and fc2's column 0 by 1e-4):
    the same function in FP32, but a per-tensor INT8 grid for fc2's input has no room left for the other
    channels, so quantizing fc2 alone wrecks the output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 32)
        self.head = torch.nn.Linear(32, 10)
        with torch.no_grad():
            self.fc1.weight[0] *= 1e4
            self.fc1.bias[0] = self.fc1.bias[0].abs() * 1e4
            self.fc2.weight[:, 0] *= 1e-4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def outlier_mlp() -> torch.nn.Module:
    return OutlierMLP().eval()


def _data(n: int, seed: int) -> DataSet:
    return DataSet({"x": np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)}, None, f"rng{seed}")


def _bundle(model: torch.nn.Module) -> ModelBundle:
    return ModelBundle(model, (TensorSpec("x", ("batch", 16)),), family="custom", task="classification")


def _run(max_drop: float, profiles=("ort_ov",), **spec):
    from edgekit.quant.graph import graph_quantize_profiles
    from edgekit.quant.graph.accuracy_aware import RankingGoal

    model = outlier_mlp()
    goal = RankingGoal(_data(64, 1), "cosine", max_drop, AccuracyAwareSpec(max_drop=max_drop, **spec))
    return graph_quantize_profiles(model, _bundle(model), ["x"], _data(64, 0), QuantSpec(), profiles, goal, log=print)


def test_node_names_are_stable_across_captures_and_copies():
    from edgekit.quant.graph.annotate import EdgekitQuantizer, annotated_nodes
    from edgekit.quant.graph.capture import capture
    from edgekit.quant.graph.profiles import PROFILES

    model = outlier_mlp()
    sample = (torch.randn(2, 16),)
    quantizer = EdgekitQuantizer(QuantSpec(), PROFILES.get("ort_ov"), False)
    first, second = capture(model, _bundle(model), sample), capture(model, _bundle(model), sample)
    names = [annotated_nodes(quantizer.annotate(g)) for g in (first, second, copy.deepcopy(first))]
    assert names[0] == names[1] == names[2] and FC2 in names[0]


@pytest.mark.parametrize("method", list(RevertMethod))
def test_the_outlier_node_is_ranked_first_and_kept_float_on_every_profile(method):
    results = _run(0.001, ("ort_ov", "full_integer"), method=method, max_layers=3)
    rec = results["ort_ov"].info["accuracy_aware"]
    assert rec["needed"] and rec["within"] and rec["unit"] == "graph node"
    assert rec["ranking"][0]["layer"] == FC2 and rec["kept_fp32"] == [FC2]
    assert rec["drop_after"] <= 0.001 < rec["drop_before"]
    x = torch.from_numpy(_data(32, 2).inputs["x"])
    for res in results.values():  # fc2 has no Q/DQ in any profile: its weight and input stay float
        assert not any(k.startswith(f"{FC2}.") for k in res.encodings.tensors)
        assert any(k.startswith("fc1/") for k in res.encodings.tensors)
        assert res.encodings.meta["fp32_nodes"] == [FC2]
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(res.program(x), outlier_mlp()(x)).mean()
        assert float(cos) > 0.999


def test_within_budget_keeps_nothing():
    rec = _run(1.0)["ort_ov"].info["accuracy_aware"]
    assert not rec["needed"] and rec["kept_fp32"] == [] and rec["drop_before"] <= 1.0


def test_recipe_option_keeps_the_node_float_in_every_target_and_reports_it(tmp_path):
    recipe = recipe_from_dict(
        {
            "name": "aa",
            "model": {"source": "tests.test_accuracy_aware:outlier_mlp"},
            "inputs": [{"name": "x", "shape": ["batch", 16]}],
            "quantization": {
                "calibration": {"source": "random", "samples": 64},
                "accuracy_aware": {"max_drop": 0.001, "samples": 64, "data": {"source": "random", "seed": 5}},
            },
            "targets": [{"name": "onnx"}, {"name": "openvino"}],
            "validation": {"data": {"source": "random", "samples": 64, "seed": 9}, "budget": 0.002},
        }
    )
    result = edgekit.run_recipe(recipe, tmp_path / "out", progress=False, benchmark=False, log=lambda *_: None)
    aa = result.report["calibration"]["accuracy_aware"]
    assert aa["kept_fp32"] == [FC2] and result.passed
    encodings = json.loads((tmp_path / "out" / "encodings.json").read_text())
    assert not any(k.startswith(f"{FC2}.") for k in encodings["tensors"]) and encodings["meta"]["fp32_nodes"] == [FC2]
    graph = onnx.load(str(tmp_path / "out" / "onnx" / "int8" / "model.onnx")).graph
    # the ONNX (and OpenVINO) int8 graph stores fc1's weight in int8 and keeps fc2's float
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert "fc1.weight_quantized" in int8 and "fc2.weight_quantized" not in int8
    assert any(i.name == "fc2.weight" for i in graph.initializer)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Accuracy-aware quantization" in md and f"| 1 | {FC2} |" in md


def test_agreement_metric_and_recipe_run_report_it(tmp_path):
    recipe = recipe_from_dict(
        {
            "name": "graph-aa",
            "model": {"source": "tests.test_accuracy_aware:outlier_mlp"},
            "inputs": [{"name": "x", "shape": ["batch", 16]}],
            "quantization": {
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


def test_native_quantizer_with_accuracy_aware_is_rejected():
    from edgekit.errors import RecipeError

    with pytest.raises(RecipeError, match="accuracy_aware works on edgekit"):
        recipe_from_dict(
            {
                "name": "x",
                "model": {"source": "vit"},
                "quantization": {
                    "quantizer": "native",
                    "calibration": {"source": "random"},
                    "accuracy_aware": {"max_drop": 0.1},
                },
            }
        )
