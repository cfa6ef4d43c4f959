"""Accuracy-aware quantization: the layer whose input carries an outlier channel is found and kept in FP32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import edgekit
from edgekit.data import DataSet
from edgekit.quant import calibrate
from edgekit.quant.accuracy_aware import keep_sensitive_fp32
from edgekit.recipe import AccuracyAwareSpec, QuantSpec, RevertMethod, recipe_from_dict


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
    x = np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)
    return DataSet({"x": x}, None, "gaussian")


@pytest.mark.parametrize("method", list(RevertMethod))
def test_the_outlier_layer_is_ranked_first_and_kept_fp32(method):
    model = outlier_mlp()
    cal = calibrate(model, ["x"], _data(64, 0), QuantSpec(), progress=False)
    spec = AccuracyAwareSpec(max_drop=0.001, method=method, max_layers=3)
    enc, rec = keep_sensitive_fp32(cal.sim, cal.encodings, ["x"], _data(128, 1), "cosine", 0.001, spec, log=print)
    assert rec["needed"] and rec["drop_before"] > 0.001
    assert rec["ranking"][0]["layer"] == "fc2" and rec["kept_fp32"] == ["fc2"]
    assert rec["within"] and rec["drop_after"] <= 0.001
    assert "fc2.input" not in enc and "fc2.weight" not in enc and "fc1.input" in enc
    assert enc.meta["fp32_layers"] == ["fc2"]
    with torch.no_grad():  # the simulated model now carries the reduced encodings
        x = torch.from_numpy(_data(32, 2).inputs["x"])
        cos = torch.nn.functional.cosine_similarity(cal.sim(x), model(x)).mean()
    assert float(cos) > 0.999


def test_within_budget_changes_nothing():
    model = outlier_mlp()
    cal = calibrate(model, ["x"], _data(64, 0), QuantSpec(), progress=False)
    before = dict(cal.encodings.tensors)
    spec = AccuracyAwareSpec(max_drop=1.0)
    enc, rec = keep_sensitive_fp32(cal.sim, cal.encodings, ["x"], _data(64, 1), "cosine", 1.0, spec, log=print)
    assert not rec["needed"] and enc.tensors == before


def test_recipe_option_reverts_in_every_target_and_reports_it(tmp_path):
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
    assert aa["kept_fp32"] == ["fc2"] and result.passed
    encodings = json.loads((tmp_path / "out" / "encodings.json").read_text())
    assert not any(k.startswith("fc2.") for k in encodings["tensors"]) and encodings["meta"]["fp32_layers"] == ["fc2"]
    graph = onnx.load(str(tmp_path / "out" / "onnx" / "int8" / "model.onnx")).graph
    q_scopes = {n.name.split("/")[1] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert "fc1" in q_scopes and "fc2" not in q_scopes  # the ONNX (and OpenVINO) int8 graph keeps fc2 in float
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Accuracy-aware quantization" in md and "| 1 | fc2 |" in md


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
