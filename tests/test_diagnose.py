"""Per-node divergence (``edgekit diagnose``, and the report section of a failing target) and docs/RESULTS.md."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edgekit
from edgekit.recipe import recipe_from_dict

from .conftest import TINY_VIT


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """A trained tiny ViT whose budget cannot hold: every int8 row fails, so the run diagnoses them."""
    recipe = recipe_from_dict(
        {
            "name": "tiny-diag",
            "model": {"source": "vit", "config": dict(TINY_VIT)},
            "train": {"data": {"source": "digits", "split": "train"}, "epochs": 3, "lr": 0.003, "batch_size": 64},
            "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 64}},
            "targets": [{"name": "onnx"}, {"name": "openvino"}],
            "validation": {"data": {"source": "digits", "split": "test", "samples": 64}, "budget": -100.0},
        }
    )
    out = tmp_path_factory.mktemp("runs") / "diag"
    result = edgekit.run_recipe(recipe, out, progress=False, benchmark=False, log=lambda *_: None)
    return out, result


def test_failing_int8_targets_are_diagnosed_in_the_report(failing_run):
    out, result = failing_run
    diag = {d["target"]: d for d in result.report["diagnosis"]}
    assert set(diag) == {"onnx", "openvino"}
    onnx_nodes = [r for r in diag["onnx"]["layers"] if r["found"]]
    # every quantized graph node (13 linears, 4 attention matmuls, the patch conv) located in the ONNX graph
    assert len(onnx_nodes) == len(diag["onnx"]["layers"]) == 18 and diag["onnx"]["unit"] == "graph node"
    # ORT's integer kernels round differently from the program's float Q/DQ (attention's P·V: ~35 dB), but every
    # node stays above the departure threshold
    assert all(r["sqnr_vs_sim_db"] > 30 for r in onnx_nodes)
    assert diag["onnx"]["first_departure"] is None and "quantization itself" in diag["onnx"]["verdict"]
    assert diag["openvino"]["located"] >= 6
    md = (out / "report.md").read_text()
    assert "### Per-node divergence: onnx int8" in md and "SQNR vs simulated dB" in md


def test_diagnose_finds_the_layer_an_artifact_got_wrong(failing_run, run_cli, tmp_path):
    out = tmp_path / "diag"
    shutil.copytree(failing_run[0], out)  # corrupt a copy: the run is shared by the module's other tests
    path = out / "onnx" / "int8" / "model.onnx"
    model = onnx.load(str(path))
    # corrupt one layer the way a broken lowering would: fc1's int8 weights scaled wrong
    target = next(i for i in model.graph.initializer if i.name.endswith("layers.0.mlp.fc1.weight_quantized"))
    w = numpy_helper.to_array(target)
    target.CopyFrom(numpy_helper.from_array((w // 4).astype(w.dtype), target.name))
    onnx.save(model, str(path))
    code, stdout, err = run_cli("diagnose", out, "--target", "onnx", "--samples", "4")
    assert code == 0, err
    result = json.loads((out / "diagnose" / "onnx-int8.json").read_text())
    assert result["first_departure"] == "hf.vit.layers.0.mlp.fc1/linear_4"
    assert result["rebuilt_program"]["matches"]  # the rebuilt program has the run's encodings
    assert "first departure" in stdout and (out / "diagnose" / "onnx-int8.md").is_file()


def test_diagnose_refuses_a_runtime_without_intermediates(tmp_path, run_cli):
    art = tmp_path / "run" / "tflite" / "int8"
    art.mkdir(parents=True)
    (art / "artifact.json").write_text(json.dumps({"runtime": "litert", "target": "tflite", "file": "m.tflite"}))
    code, _, err = run_cli("diagnose", tmp_path / "run", "--target", "tflite")
    assert code == 2 and "cannot expose intermediate outputs" in err


def test_results_table_lists_every_row_and_the_failures(failing_run, tmp_path, run_cli):
    out, result = failing_run
    reduced = tmp_path / "x-reduced"
    reduced.mkdir()
    (reduced / "report.json").write_text(json.dumps({**result.report, "recipe": "tiny-diag-reduced"}))
    code, _, err = run_cli("results", out, reduced, "--out", tmp_path / "RESULTS.md")
    assert code == 0, err
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("| `tiny-diag` |") == 1 + len(result.report["rows"])  # recipe table + one row per artifact
    assert "tiny-diag-reduced" not in text
    assert "`tiny-diag` onnx int8: **fail**" in text and "per-node divergence" in text
    assert np.isfinite(result.report["reference"]["fp32_torch"])


def test_results_table_compares_a_subset_row_with_fp32_on_that_subset():
    from edgekit.validate.results_table import fp32_on_rows_samples

    run = {"reference": {"fp32_torch": 88.30}}
    subset = {"accuracy": {"metric": 89.40}, "delta": -0.10, "samples": 1000}  # CoreML: first 1000 images only
    assert fp32_on_rows_samples(run, subset) == pytest.approx(89.50)
    assert fp32_on_rows_samples(run, {"status": "unsupported"}) == 88.30
