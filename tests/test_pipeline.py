"""End to end on tiny models: recipe -> artifacts -> validation -> latency -> report + manifest."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import edgekit
from edgekit.recipe import recipe_from_dict

from .conftest import TINY_VIT, write_yaml


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny run on both targets (edgekit int8), shared by the report/manifest/rerun tests."""
    recipe = recipe_from_dict(
        {
            "name": "tiny-vit",
            "model": {
                "source": "vit",
                "config": dict(TINY_VIT),
            },
            "train": {"data": {"source": "digits", "split": "train"}, "epochs": 20, "lr": 0.003, "batch_size": 64},
            "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 64}},
            "targets": [
                {"name": "onnx", "precisions": ["fp32", "fp16", "int8"]},
                {"name": "openvino", "precisions": ["fp32", "int8"]},
            ],
            "validation": {"data": {"source": "digits", "split": "test"}, "budget": 5.0},
            "benchmark": {"warmup": 2, "iterations": 10},
        }
    )
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = edgekit.run_recipe(recipe, out, progress=False, log=lambda *_: None)
    return out, result


def test_run_writes_every_artifact_and_report(run_dir):
    out, result = run_dir
    for rel in (
        "onnx/fp32/model.onnx",
        "onnx/int8/model.onnx",
        "openvino/int8/model.xml",
        "encodings.json",
        "report.json",
        "report.md",
        "report.html",
        "manifest.json",
        "reference.npz",
        "recipe.yaml",
        "model/config.json",
        "plots/latency.png",
    ):
        assert (out / rel).is_file(), rel
    rows = {(r["target"], r["precision"]): r for r in result.report["rows"]}
    assert set(rows) == {
        ("onnx", "fp32"),
        ("onnx", "fp16"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
    }
    ref = result.report["reference"]["fp32_torch"]
    assert ref > 60.0  # trained for real on the digits (chance is 10%)
    for r in rows.values():
        assert r["status"] == "ok"
        assert abs(r["delta"]) <= 5.0
        lat = r["latency"]
        assert lat["p50_ms"] > 0 and lat["p99_ms"] >= lat["p50_ms"] and lat["iterations"] == 10
        assert lat["peak_rss_mb"] > 0 and lat["load_ms"] > 0
    assert rows[("onnx", "fp32")]["accuracy"]["agreement_vs_fp32"] == 100.0
    assert rows[("onnx", "int8")]["accuracy"]["agreement_vs_sim"] >= 98.0
    assert rows[("openvino", "fp32")]["latency"]["settings"]["inference_precision"] == "f32"
    md = (out / "report.md").read_text()
    assert "| onnx | int8 (edgekit) | ok |" in md and "speedup vs FP32" in md


def test_manifest_hashes_every_file(run_dir):
    out, _ = run_dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"].startswith("2.13.0")
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(manifest["files"]) == files
    rel = "onnx/int8/model.onnx"
    assert manifest["files"][rel]["sha256"] == hashlib.sha256((out / rel).read_bytes()).hexdigest()
    assert manifest["io"]["inputs"][0] == {"name": "pixel_values", "shape": ["batch", 1, 8, 8], "dtype": "float32"}


def test_validate_and_bench_rerun(run_dir, run_cli):
    out, result = run_dir
    code, stdout, err = run_cli("validate", out)
    assert code == 0, err
    again = json.loads((out / "report.json").read_text())
    before = {(r["target"], r["precision"]): r["accuracy"]["metric"] for r in result.report["rows"]}
    after = {(r["target"], r["precision"]): r["accuracy"]["metric"] for r in again["rows"]}
    assert before == after
    code, stdout, err = run_cli("bench", out, "--iterations", "3", "--warmup", "1")
    assert code == 0, err
    assert all(r["latency"]["iterations"] == 3 for r in json.loads((out / "report.json").read_text())["rows"])


def test_budget_failure_exits_1_and_is_marked(run_cli, tmp_path, tiny_vit_recipe):
    tiny_vit_recipe["validation"]["budget"] = -50.0  # impossible: must fail
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, out, err = run_cli("run", path, "--out", tmp_path / "out", "--no-bench")
    assert code == 1, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["passed"] is False and all(r["status"] == "fail" for r in report["rows"])
    assert "Result: FAIL" in out


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_native_quantizer(run_cli, tmp_path, tiny_vit_recipe, target):
    tiny_vit_recipe["quantization"]["quantizer"] = "native"
    tiny_vit_recipe["targets"] = [{"name": target, "precisions": ["int8"]}]
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out", "--no-bench")
    assert code == 0, err
    row = json.loads((tmp_path / "out" / "report.json").read_text())["rows"][0]
    assert row["quantizer"] == "native" and row["accuracy"]["cosine_vs_fp32"] > 0.9


def test_native_onnx_op_types_limits_what_quantize_static_quantizes(run_cli, tmp_path, tiny_vit_recipe):
    import onnx

    tiny_vit_recipe["quantization"]["quantizer"] = "native"
    tiny_vit_recipe["targets"] = [{"name": "onnx", "precisions": ["int8"], "options": {"op_types": ["MatMul"]}}]
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out", "--no-bench")
    assert code == 0, err
    model = onnx.load(str(tmp_path / "out" / "onnx" / "int8" / "model.onnx"))
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    fed = {n.op_type for n in model.graph.node if n.op_type != "DequantizeLinear" and set(n.input) & dq}
    assert "MatMul" in fed and "Conv" not in fed  # the patch-embedding conv stays float
    tiny_vit_recipe["targets"][0]["options"] = {"op_types": [3]}
    code, _, err = run_cli("recipe", "check", write_yaml(tmp_path / "bad.yaml", tiny_vit_recipe))
    assert code == 2 and "options.op_types" in err and "Traceback" not in err


def test_export_all_targets_and_python_api_module(tmp_path):
    from .conftest import tiny_convnet

    result = edgekit.export(
        tiny_convnet(),
        tmp_path / "out",
        targets="all",
        precisions=("fp32", "int8"),
        calib="digits:train",
        val="digits:test",
        inputs=[{"name": "x", "shape": ["batch", 1, 8, 8]}],
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    targets = {r["target"] for r in result.report["rows"]}
    assert {"onnx", "openvino"} <= targets
    for r in result.report["rows"]:
        if r["status"] != "skipped":
            assert r["accuracy"]["cosine_vs_fp32"] > 0.99


def test_targets_command(run_cli):
    code, out, _ = run_cli("targets")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.strip().splitlines()}
    assert "yes" in lines["onnx"] and "yes" in lines["openvino"]


def test_bert_embedding_export_reports_cosine(tmp_path):
    result = edgekit.run_recipe(
        recipe_from_dict(
            {
                "name": "tiny-bert",
                "model": {"source": "bert", "config": {"num_hidden_layers": 1}},
                "quantization": {"calibration": {"source": "random", "samples": 16, "max_length": 16}},
                "targets": [{"name": "onnx"}],
                "validation": {"data": {"source": "random", "samples": 16, "seed": 1, "max_length": 16}},
            }
        ),
        tmp_path / "out",
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    assert result.report["metric"] == "cosine"
    int8 = next(r for r in result.report["rows"] if r["precision"] == "int8")
    assert int8["accuracy"]["cosine_vs_fp32"] > 0.95
    assert np.isfinite(int8["accuracy"]["sqnr_db"])


def test_target_all_marks_a_target_that_cannot_represent_the_model(tmp_path, run_cli):
    """CoreML has no rank-6 tensors: under `all` that is a row, not an aborted run."""
    pytest.importorskip("coremltools", reason="coreml extra not installed")
    recipe = recipe_from_dict(
        {
            "name": "rank6-all",
            "model": {"source": "tests.conftest:rank6_net"},
            "inputs": [{"name": "x", "shape": ["batch", 2, 4, 4]}],
            "targets": [{"name": "all", "precisions": ["fp32"]}],
            "validation": {"data": {"source": "random", "samples": 4}},
        }
    )
    result = edgekit.run_recipe(recipe, tmp_path / "out", progress=False, benchmark=False, log=lambda *_: None)
    rows = {r["target"]: r for r in result.report["rows"]}
    assert rows["coreml"]["status"] == "unsupported" and "conversion failed" in rows["coreml"]["notes"][0]
    assert rows["onnx"]["status"] == "ok" and result.passed
    assert not (tmp_path / "out" / "coreml").exists()
    # named explicitly, the same failure is that row and fails the run (exit 1); the report is written
    out = tmp_path / "x"
    code, stdout, err = run_cli(
        "export",
        "tests.conftest:rank6_net",
        "--input",
        "x:batch,2,4,4",
        "--target",
        "coreml",
        "--precision",
        "fp32",
        "--val",
        "random",
        "--out",
        out,
    )
    assert code == 1 and "Traceback" not in err and "coreml fp32: unsupported: coreml: conversion failed" in stdout
    assert not (out / "coreml").exists() and (out / "report.json").is_file()
