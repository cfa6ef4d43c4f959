"""quantizer: neural-compressor: recipe checks, the INC program's encodings, its lowering to onnx/openvino/tflite."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from edgekit.errors import MissingBackendError, RecipeError
from edgekit.recipe import recipe_from_dict

from .conftest import TINY_VIT, bundle

pytest.importorskip("neural_compressor.torch.quantization")

BASE = {
    "name": "inc",
    "model": {"source": "vit", "config": dict(TINY_VIT)},
    "targets": [{"name": "onnx", "precisions": ["int8"]}],
}
CALIB = {"source": "digits", "split": "train", "samples": 32}


def _recipe(**quant):
    return recipe_from_dict({**BASE, "quantization": {"calibration": CALIB, **quant}})


@pytest.mark.parametrize(
    ("quant", "says"),
    [
        ({"quantizer": "neural-compressor", "inc": {"smooth_quant": 0.5}}, "intel_extension_for_pytorch"),
        ({"inc": {"autotune": True}}, "needs quantizer: neural-compressor"),
        ({"quantizer": "neural-compressor", "estimator": "mse"}, "use minmax or entropy"),
        ({"quantizer": "neural-compressor", "accuracy_aware": {}}, "autotune"),
        ({"quantizer": "neural-compressor", "inc": {"max_trials": 0}}, "max_trials must be positive"),
    ],
)
def test_recipe_rejects_what_inc_cannot_do(quant, says):
    with pytest.raises(RecipeError, match=says):
        _recipe(**quant)


def test_missing_package_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    from edgekit.pipeline import run_recipe
    from edgekit.quant import inc

    monkeypatch.setitem(sys.modules, "neural_compressor.torch.quantization", None)
    with pytest.raises(MissingBackendError, match=r"quantizer 'neural-compressor'.*edgekit\[inc\]"):
        inc._require()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "neural_compressor" else real(n, *a))
    with pytest.raises(MissingBackendError, match=r"edgekit\[inc\]"):  # before the model is even loaded
        run_recipe(_recipe(quantizer="neural-compressor"), tmp_path / "run", progress=False, benchmark=False)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def inc_program():
    from edgekit.data import load_data
    from edgekit.quant.inc import inc_quantize
    from edgekit.recipe import DataSpec

    b = bundle("vit", TINY_VIT)
    calib = load_data(DataSpec(**CALIB), b, "calibration")
    q = _recipe(quantizer="neural-compressor").quantization
    return b, inc_quantize(b.module, b, ["pixel_values"], calib, q, None, 0.0, log=lambda *_: None)


def test_encodings_are_read_from_the_program_by_node(inc_program):
    b, res = inc_program
    keys = set(res.encodings.tensors)
    linears = [n for n, m in b.module.named_modules() if isinstance(m, torch.nn.Linear)]
    for name in linears:  # every linear's weight, named by its module and graph node
        assert any(k.startswith(f"{name}/linear") and k.endswith(".weight") for k in keys), name
    enc = res.encodings[next(k for k in keys if k.startswith("hf.classifier/") and k.endswith(".input"))]
    assert not enc.signed and enc.axis is None  # INC's x86 quantizer: uint8 per-tensor activations
    assert res.encodings.meta["producer"].startswith("neural-compressor")


def test_uint8_activations_rewritten_as_int8_same_values(inc_program):
    from edgekit.quant.pt2e import activations_as_int8
    from edgekit.targets.pt2e_lowering import pt2e_form

    b, res = inc_program
    x = b.example_inputs(3, 16)
    form = pt2e_form(res.program)
    assert activations_as_int8(form) == 0  # already rewritten
    dtypes = {n.args[5] for n in form.graph.nodes if "quantize_per_tensor" in str(n.target)}
    assert dtypes == {torch.int8}
    assert torch.equal(form(*x), res.program(*x))


def test_autotune_tries_configs_until_the_budget(inc_program):
    from edgekit.data import load_data
    from edgekit.quant.inc import inc_quantize
    from edgekit.recipe import DataSpec

    b, _ = inc_program
    calib = load_data(DataSpec(**CALIB), b, "calibration")
    q = _recipe(quantizer="neural-compressor", inc={"autotune": True, "max_trials": 2}).quantization
    scores = iter([1.0, 0.5, 0.7])  # fp32, trial 1, trial 2: neither within a budget of 0.01 (INC: relative)

    res = inc_quantize(b.module, b, ["pixel_values"], calib, q, lambda m: next(scores), 0.01, log=lambda *_: None)
    tune = res.info["autotune"]
    assert [t["metric"] for t in tune["trials"]] == [0.5, 0.7]
    assert "kl" in tune["trials"][1]["config"]  # the second config: the other observer
    assert "kl" in res.info["config"]  # INC re-quantized with its best trial


def test_pipeline_lowers_inc_program_to_onnx_openvino_tflite(tmp_path, tiny_vit_recipe):
    import onnx

    from edgekit.diagnose import rebuild
    from edgekit.pipeline import run_recipe

    tiny_vit_recipe["quantization"] = {"quantizer": "neural-compressor", "calibration": CALIB}
    tiny_vit_recipe["validation"]["data"]["samples"] = 40
    tiny_vit_recipe["targets"] = [
        {"name": t, "precisions": ["int8"]} for t in ("onnx", "openvino", "tflite", "executorch", "coreml")
    ]
    run = run_recipe(recipe_from_dict(tiny_vit_recipe), tmp_path / "run", progress=False, benchmark=False, log=print)
    rows = {r["target"]: r for r in run.report["rows"]}
    for t in ("onnx", "openvino", "tflite"):
        assert rows[t]["status"] == "ok", rows[t]
        assert rows[t]["quantizer"] == "neural-compressor"
        assert rows[t]["accuracy"]["sqnr_vs_sim_db"] > 25  # agrees with INC's own program
    for t in ("executorch", "coreml"):
        assert rows[t]["status"] == "unsupported" and "neural-compressor" in rows[t]["notes"][0]
    model = onnx.load(str(tmp_path / "run" / "onnx" / "int8" / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    weights = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    assert all(weights[n.input[0]].data_type == onnx.TensorProto.INT8 for n in weight_dq)
    assert ops.count("QuantizeLinear") == 10 and len(weight_dq) == 14  # 10 activation Q, 14 conv/linear weights
    assert "Clip" not in ops
    doc = json.loads((tmp_path / "run" / "encodings.json").read_text())
    assert len(doc["tensors"]) == 24 and doc["meta"]["producer"].startswith("neural-compressor")
    assert run.report["calibration"]["config"].startswith("act uint8 asym")
    # `edgekit diagnose` rebuilds INC's program from the run directory, with the run's scales
    _, program, _, rebuilt = rebuild(tmp_path / "run", "onnx")
    assert isinstance(program, torch.fx.GraphModule) and rebuilt["matches"] and rebuilt["tensors"] == 24
    assert np.isfinite(run.report["reference"]["sim_int8"])


def test_output_named_without_clashing_with_an_internal_value():
    import onnx
    from onnx import TensorProto, helper

    from edgekit.targets.pt2e_lowering import name_output

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("mean", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["embedding"]), helper.make_node("Neg", ["embedding"], ["mean"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    name_output(model, "embedding")  # the IO spec's name is already an internal value
    onnx.checker.check_model(model)
    assert model.graph.output[0].name == "embedding"
    assert [list(n.output) for n in model.graph.node] == [["embedding__internal"], ["embedding"]]
