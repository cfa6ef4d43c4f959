"""Sweeps: the sweep file, job ids and resume, the local and Ray executors giving the same merged report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import RecipeError
from edgekit.sweep import run_sweep, sweep_from_dict
from edgekit.sweep.jobs import ERROR, expand
from edgekit.sweep.report import COMPARED

from .conftest import TINY_VIT

TREE = Path(__file__).resolve().parent.parent
DIGITS = {
    "calibration": {"source": "digits", "split": "train", "samples": 64},
    "validation": {"source": "digits", "split": "test", "samples": 100},
    "budget": 100.0,
    "benchmark": False,
}


def sweep_doc() -> dict:
    """Six tiny jobs over onnx/openvino x fp32/int8; `broken` names an activation HF does not have: its job raises."""
    return {
        "name": "tiny",
        "models": [
            {"source": "vit", "name": "vit-a", "config": dict(TINY_VIT)},
            {"source": "vit", "name": "vit-b", "config": {**TINY_VIT, "num_hidden_layers": 1}},
            {"source": "vit", "name": "broken", "config": {**TINY_VIT, "hidden_act": "nope"}},
        ],
        "overrides": DIGITS,
        "jobs": [
            *({"model": "vit-a", "target": t, "precision": p} for t in ("onnx", "openvino") for p in ("fp32", "int8")),
            {"model": "vit-b", "target": "openvino", "precision": "int8"},
            {"model": "broken", "target": "onnx", "precision": "int8"},
        ],
    }


@pytest.fixture(scope="session")
def ray_sweep(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "ray"
    spec = sweep_from_dict(sweep_doc())
    return spec, out, run_sweep(spec, TREE, out, "ray", progress=False)


def compared(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(r.get(k) for k in COMPARED) for r in rows)


def test_sweep_file_rejects_unknown_keys_and_models():
    with pytest.raises(RecipeError, match="did you mean 'precisions'"):
        sweep_from_dict({**sweep_doc(), "precision": ["fp32"]})
    bad = sweep_doc()
    bad["jobs"] = [{"model": "vit-c", "target": "onnx"}]
    with pytest.raises(RecipeError, match="did you mean 'vit-"):
        sweep_from_dict(bad)
    typo = {**sweep_doc(), "jobs": [], "targets": ["openvno"], "models": sweep_doc()["models"][:1]}
    with pytest.raises(RecipeError, match="did you mean 'openvino'"):
        expand(sweep_from_dict(typo), TREE)
    with pytest.raises(RecipeError, match="target openvino: options: unknown key 'precision'"):
        expand(
            sweep_from_dict({**typo, "targets": ["openvino"], "target_options": {"openvino": {"precision": 1}}}), TREE
        )
    with pytest.raises(RecipeError, match=r"estimator.*'minmx' is not valid"):
        sweep_from_dict({**sweep_doc(), "overrides": {**DIGITS, "estimator": "minmx"}})


def test_grid_expands_and_ids_follow_the_recipe():
    doc = {"name": "g", "models": [{"recipe": "recipes/vit.yaml"}], "targets": ["onnx", "openvino"]}
    doc |= {"precisions": ["fp32", "int8"], "devices": [{"name": "pixel8", "url": "adb:X"}]}
    jobs = expand(sweep_from_dict(doc), TREE)
    assert [(j.target, j.precision) for j in jobs] == [
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
    ]
    assert all(j.id.startswith(f"vit-{j.target}-{j.precision}-pixel8-") for j in jobs)
    assert [t.name for t in jobs[1].recipe.targets] == ["onnx"] and jobs[1].recipe.targets[0].precisions[
        0
    ].value == "int8"
    assert jobs[1].recipe.train is not None  # the recipe file is the base
    again = expand(sweep_from_dict(doc), TREE)
    assert [j.id for j in again] == [j.id for j in jobs]  # same inputs, same ids
    doc["overrides"] = {"estimator": "percentile"}
    changed = expand(sweep_from_dict(doc), TREE)
    assert changed[0].recipe.quantization.estimator.value == "percentile"
    assert not {j.id for j in changed} & {j.id for j in jobs}
    reduced = expand(sweep_from_dict({**doc, "overrides": {"reduced": True}}), TREE)
    assert reduced[0].recipe.name == "vit-reduced"


def test_ray_sweep_failed_job_is_a_row_and_rerun_skips(ray_sweep, tmp_path):
    spec, out, result = ray_sweep
    rows = result.report["rows"]
    assert result.ran == 6 and result.report["summary"]["jobs"] == 6
    errors = [r for r in rows if r["status"] == ERROR]
    assert [r["model"] for r in errors] == ["broken"]
    note = errors[0]["note"]  # the job's one-line error: the typed model error, naming the bad config value
    assert note.startswith("ModelError: model 'vit' could not be built") and "KeyError: 'nope'" in note
    assert "\n" not in note
    assert "Traceback" in (out / errors[0]["log"]).read_text()
    done = [r for r in rows if r["status"] != ERROR]
    assert len(done) == 5 and all(r["status"] == "ok" and r["value"] is not None for r in done)
    for r in done:  # each job is a full run directory, made by workers importing this tree
        assert (out / r["job"] / "report.json").is_file() and (out / r["job"] / "manifest.json").is_file()
        assert json.loads((out / "jobs" / f"{r['job']}.json").read_text())["edgekit"] == str(TREE / "edgekit")
    md = (out / "sweep.md").read_text()
    assert "| broken | onnx | int8 | - | error |" in md and "KeyError" in md
    assert "<table>" in (out / "sweep.html").read_text()
    assert json.loads((out / "sweep.json").read_text())["rows"] == json.loads(json.dumps(rows, default=str))

    again = run_sweep(spec, TREE, out, "ray", progress=False)
    assert again.ran == 0 and again.reused == 6
    assert compared(again.report["rows"]) == compared(rows)
    retried = run_sweep(spec, TREE, out, "ray", retry_failed=True, progress=False)
    assert retried.ran == 1  # only the failed job
    assert [r["model"] for r in retried.report["rows"] if r["status"] == ERROR] == ["broken"]


def test_local_executor_gives_the_same_table(ray_sweep, tmp_path):
    spec, _, ray_result = ray_sweep
    local = run_sweep(spec, TREE, tmp_path / "local", "local", workers=2, progress=False)
    assert compared(local.report["rows"]) == compared(ray_result.report["rows"])
    assert local.report["executor"] == "local"


def test_device_job_without_a_node_declaring_the_device_is_an_error_row(ray_cluster, tmp_path):
    doc = sweep_doc()
    doc["devices"] = [{"name": "pixel8", "url": "adb:SERIAL"}]
    doc["jobs"] = [{"model": "vit-a", "target": "onnx", "precision": "fp32", "device": "pixel8"}]
    result = run_sweep(sweep_from_dict(doc), TREE, tmp_path / "dev", "ray", progress=False)
    (row,) = result.report["rows"]
    assert row["status"] == ERROR and "device:pixel8" in row["note"] and "ray start" in row["note"]


def test_ray_task_options_declare_resources():
    from edgekit.sweep.executors import RayExecutor

    doc = sweep_doc()
    doc |= {"devices": [{"name": "pixel8"}], "resources": {"num_cpus": 2, "num_gpus": 1, "memory_gb": 1.5}}
    doc["jobs"] = [{"model": "vit-a", "target": "onnx", "device": "pixel8"}, {"model": "vit-b"}]
    dev, plain = expand(sweep_from_dict(doc), TREE)
    opts = RayExecutor().options(dev)
    assert opts == {
        "num_cpus": 2.0,
        "num_gpus": 1.0,
        "max_retries": 0,
        "memory": int(1.5 * 2**30),
        "resources": {"device:pixel8": 1.0},
    }
    assert "resources" not in RayExecutor().options(plain)


def test_unknown_executor_and_missing_ray(monkeypatch):
    import sys

    from edgekit.errors import MissingBackendError
    from edgekit.raylib import import_ray
    from edgekit.sweep.executors import get_executor

    with pytest.raises(RecipeError, match="did you mean 'ray'"):
        get_executor("rayy")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingBackendError, match=r"pip install 'edgekit\[ray\]'"):
        import_ray()


def test_cross_job_speedup_uses_the_fp32_job():
    from edgekit.sweep.report import sweep_rows

    doc = sweep_doc()
    doc["jobs"] = [{"model": "vit-a", "target": "onnx", "precision": p} for p in ("fp32", "int8")]
    jobs = expand(sweep_from_dict(doc), TREE)

    def result(precision: str, p50: float) -> dict:
        row = {"target": "onnx", "precision": precision, "status": "ok", "latency": {"p50_ms": p50}, "speedup": None}
        return {"status": "done", "metric": "top1", "reference": {"fp32_torch": 10.0}, "rows": [row]}

    rows = sweep_rows(jobs, {jobs[0].id: result("fp32", 2.0), jobs[1].id: result("int8", 0.5)})
    assert [r["speedup"] for r in rows] == [1.0, 4.0]
    assert sweep_rows(jobs, {})[0]["status"] == "pending"


def test_local_pool_survives_a_dead_worker_and_runs_one_job_per_device(tmp_path):
    doc = sweep_doc()
    doc["models"].append({"source": "tests.sweep_factories:crash", "name": "crash"})
    doc["devices"] = [{"name": "bench0", "url": "local"}]
    doc["jobs"] = [
        {"model": "crash", "target": "onnx", "precision": "fp32"},
        {"model": "vit-a", "target": "onnx", "precision": "fp32", "device": "bench0"},
        {"model": "vit-b", "target": "onnx", "precision": "fp32", "device": "bench0"},
    ]
    result = run_sweep(sweep_from_dict(doc), TREE, tmp_path / "out", "local", workers=3, progress=False)
    crash, a, b = result.report["rows"]
    assert crash["status"] == ERROR and "exited with code 3" in crash["note"]
    assert a["status"] == b["status"] == "ok"
    first, second = sorted(
        (json.loads((tmp_path / "out" / "jobs" / f"{r['job']}.json").read_text()) for r in (a, b)),
        key=lambda r: r["started"],
    )
    assert first["finished"] <= second["started"]  # the device is held by one job at a time


def test_a_job_run_on_another_node_comes_back_as_an_archive(tmp_path):
    from edgekit.sweep.jobs import DONE
    from edgekit.sweep.worker import execute, unpack

    doc = sweep_doc()
    doc["jobs"] = [{"model": "vit-a", "target": "onnx", "precision": "fp32"}]
    (job,) = expand(sweep_from_dict(doc), TREE)
    result = execute(job.payload(tmp_path), ship=True)
    assert result["status"] == DONE and not (tmp_path / job.id).exists()  # nothing written to the driver's DIR
    unpack(result["archive"], tmp_path)
    report = json.loads((tmp_path / job.id / "report.json").read_text())
    assert report["rows"][0]["accuracy"]["metric"] == result["rows"][0]["accuracy"]["metric"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_the_documented_example_sweep_expands():
    from edgekit.sweep import load_sweep

    spec, base = load_sweep(TREE / "docs" / "sweep.example.yaml")
    jobs = expand(spec, base)
    assert len(jobs) == 12 and {j.model for j in jobs} == {"vit", "mobileone", "deit-small"}
    assert all(j.device is not None and j.device.name == "host" for j in jobs)
    deit = next(j for j in jobs if j.model == "deit-small")
    assert deit.recipe.quantization.estimator.value == "percentile" and deit.recipe.validation.data.samples == 2000


def test_cli_sweep_errors_are_one_line(run_cli, tmp_path):
    from .conftest import write_yaml

    bad = write_yaml(tmp_path / "bad.yaml", {**sweep_doc(), "modles": []})
    code, _, err = run_cli("sweep", bad, "--out", tmp_path / "out")
    assert code == 2 and "unknown key 'modles'" in err and "did you mean 'models'" in err
    good = write_yaml(tmp_path / "good.yaml", sweep_doc())
    code, _, err = run_cli("sweep", good, "--out", tmp_path / "out", "--executor", "rayy")
    assert code == 2 and "unknown executor 'rayy'" in err
    code, _, err = run_cli("sweep", good, "--out", tmp_path / "out", "--address", "auto")
    assert code == 2 and "--executor ray" in err
    assert not (tmp_path / "out").exists()  # nothing written before the sweep is known to be valid


def test_cli_sweep_never_writes_into_a_run_or_file(run_cli, tmp_path):
    from .conftest import tree, write_yaml

    good = write_yaml(tmp_path / "good.yaml", sweep_doc())
    run = tmp_path / "a-run"
    run.mkdir()
    (run / "report.json").write_text("{}")
    before = tree(tmp_path)
    for out in (run, tmp_path / "good.yaml"):
        code, _, err = run_cli("sweep", good, "--out", out)
        assert code == 2 and "is not a sweep directory" in err, err
    assert tree(tmp_path) == before
