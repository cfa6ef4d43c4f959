"""Failure isolation: one artifact's compile, validation or benchmark raising is that artifact's row; the run goes
on, writes its report, and exits 1 (``--debug``: the original traceback instead)."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import UnsupportedOpError
from edgekit.isolate import isolated
from edgekit.targets.base import TARGETS
from edgekit.targets.onnxrt import OnnxRuntimeTarget

from .conftest import TINY_VIT

TINY = [arg for k, v in TINY_VIT.items() for arg in ("--config", f"{k}={v}")]


class CompileBoom(OnnxRuntimeTarget):
    """Writes part of its artifact, then its converter raises."""

    name = "boom-compile"

    def compile(self, ctx, precision, options, out):
        (out / "half-written.onnx").write_bytes(b"\0")
        raise RuntimeError("the converter exploded\nsecond line of the message")


class ValidateBoom(OnnxRuntimeTarget):
    """Compiles like onnx; its runtime raises on the first batch."""

    name = "boom-validate"

    def run(self, session, feeds):
        raise ValueError("the runtime fell over")


@pytest.fixture
def boom_targets():
    for t in (CompileBoom(), ValidateBoom()):
        TARGETS.add(t.name, t)
    yield
    for name in ("boom-compile", "boom-validate"):
        TARGETS._items.pop(name)


def _export(run_cli, out, targets, *extra):
    return run_cli(
        *extra,
        "export",
        "vit",
        *TINY,
        "--target",
        targets,
        "--precision",
        "fp32",
        "--val",
        "digits",
        "--val-samples",
        "16",
        "--no-bench",
        "--out",
        out,
    )


def test_a_failing_artifact_is_its_row_and_the_run_goes_on(run_cli, tmp_path, boom_targets):
    out = tmp_path / "out"
    code, stdout, err = _export(run_cli, out, "onnx,boom-compile,boom-validate")
    assert code == 1, err
    assert "Traceback" not in err and "Traceback" not in stdout
    report = json.loads((out / "report.json").read_text())
    rows = {r["target"]: r for r in report["rows"]}
    assert rows["onnx"]["status"] == "ok"
    compile_row, validate_row = rows["boom-compile"], rows["boom-validate"]
    assert compile_row["status"] == "error" and compile_row["stage"] == "compile"
    assert compile_row["notes"] == ["compile failed: RuntimeError: the converter exploded"]
    assert validate_row["status"] == "error" and validate_row["stage"] == "validate"
    assert validate_row["notes"] == ["validate failed: ValueError: the runtime fell over"]
    assert not report["passed"]
    # the half-written artifact is gone; the one that was built but failed validation stays, for diagnosis
    assert not (out / "boom-compile").exists()
    assert (out / "boom-validate" / "fp32" / "artifact.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {r["target"]: r["status"] for r in manifest["results"]["rows"]}["boom-compile"] == "error"
    md = (out / "report.md").read_text()
    assert "Result: FAIL (2 error)" in md and "boom-compile fp32: compile failed: RuntimeError" in md
    assert "<tr class='error'>" in (out / "report.html").read_text()
    # the terminal shows each failed row's one line under the table
    assert "boom-validate fp32: error: validate failed: ValueError: the runtime fell over" in stdout
    # re-validating the run keeps the row of what was never built and gives the broken artifact its row again
    code, stdout, err = run_cli("validate", out)
    assert code == 1 and "Traceback" not in err, err
    assert "boom-compile fp32: error: compile failed" in stdout and "boom-validate fp32: error: validate" in stdout


def test_debug_reraises_with_the_traceback(run_cli, tmp_path, boom_targets):
    out = tmp_path / "out"
    code, _, err = _export(run_cli, out, "onnx,boom-compile", "--debug")
    assert code == 3
    assert "Traceback" in err and "the converter exploded" in err and "in compile" in err
    assert not out.exists()


def test_a_named_target_that_cannot_represent_the_model_fails_the_run(run_cli, tmp_path, monkeypatch):
    """``all`` reports an unsupported target and passes; a target the user named is what was asked for."""

    def cannot(self, ctx, precision, options, out):
        raise UnsupportedOpError("onnx: export failed: operator 'aten::cummax' at node 'x' is not supported")

    monkeypatch.setattr(OnnxRuntimeTarget, "compile", cannot)
    out = tmp_path / "out"
    code, stdout, err = _export(run_cli, out, "onnx")
    assert code == 1 and "Traceback" not in err
    (row,) = json.loads((out / "report.json").read_text())["rows"]
    assert row["status"] == "unsupported" and row["requested"] and "aten::cummax" in row["notes"][0]
    assert "onnx fp32: unsupported: onnx: export failed: operator 'aten::cummax'" in stdout


def test_bench_failure_is_the_row(tmp_path, monkeypatch):
    from edgekit import evaluate
    from edgekit.recipe import BenchSpec

    def bench(path, spec, sequence):
        if path.parent.name == "bad":
            raise OSError("runner binary vanished")
        return {"p50_ms": 1.0, "p99_ms": 2.0}

    monkeypatch.setattr(evaluate, "bench_local", bench)
    rows = [{"target": t, "precision": "fp32", "status": "ok", "artifact": f"{t}/fp32"} for t in ("onnx", "bad")]
    monkeypatch.setattr("edgekit.targets.base.get_target", lambda name: OnnxRuntimeTarget())
    evaluate.bench_rows(tmp_path, rows, BenchSpec(), 16, progress=False)
    good, bad = rows
    assert good["status"] == "ok" and good["latency"]["p50_ms"] == 1.0
    assert bad["status"] == "error" and bad["stage"] == "bench" and bad["latency"] is None
    assert bad["notes"] == ["bench failed: OSError: runner binary vanished"]
    assert not evaluate.passed(rows)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError, SystemExit])
def test_interrupts_and_out_of_memory_are_never_swallowed(exc, tmp_path):
    adir = tmp_path / "t" / "fp32"
    adir.mkdir(parents=True)
    with pytest.raises(exc), isolated("compile", remove=adir):
        raise exc()
    assert adir.exists()  # the run's own cleanup (RunDir) handles it


def test_isolated_outcomes(tmp_path):
    adir = tmp_path / "t" / "fp32"
    adir.mkdir(parents=True)
    with isolated("compile", remove=adir) as stage:
        raise UnsupportedOpError("coreml: conversion failed: op 'erfinv' has no MIL lowering\ndetails")
    assert (stage.status, stage.note) == ("unsupported", "coreml: conversion failed: op 'erfinv' has no MIL lowering")
    assert not (tmp_path / "t").exists()  # the artifact and its empty target directory
    with isolated("validate") as stage:
        raise RuntimeError("")
    assert (stage.status, stage.note) == ("error", "validate failed: RuntimeError")
    with isolated("bench") as stage:
        pass
    assert not stage.failed


def test_a_sweep_job_with_an_error_row_is_done_and_its_row_says_why():
    """A job whose artifact raised finished (its run wrote a report): the sweep shows that row, and is not ok."""
    from pathlib import Path

    from edgekit.sweep import SweepResult, sweep_from_dict
    from edgekit.sweep.jobs import DONE, expand
    from edgekit.sweep.report import sweep_rows

    doc = {"name": "s", "models": [{"source": "vit", "name": "v", "config": dict(TINY_VIT)}], "targets": ["onnx"]}
    doc["precisions"] = ["fp32"]
    (job,) = expand(sweep_from_dict(doc), Path(__file__).resolve().parent.parent)
    note = "validate failed: RuntimeError: CoreML reference interpreter cannot execute op 'silu'"
    row = {"target": "onnx", "precision": "fp32", "status": "error", "stage": "validate", "notes": [note]}
    result = {"status": DONE, "rows": [row], "metric": "top1", "reference": {"fp32_torch": 50.0}}
    (swept,) = sweep_rows([job], {job.id: result})
    assert swept["status"] == "error" and swept["note"] == note
    assert not SweepResult(Path("."), {"rows": [swept]}, ran=1, reused=0).ok


def test_a_runtime_that_crashes_natively_is_its_row_and_the_run_goes_on(run_cli, tmp_path, monkeypatch):
    """A native abort in a runtime cannot be caught in-process; the probe meets it in a subprocess instead."""
    import sys

    from edgekit.device.transports import local

    real = local.runner_command

    def aborting_on_openvino(artifact_dir, args):
        if artifact_dir.parent.name == "openvino":
            return [sys.executable, "-c", "import os; os.abort()"]
        return real(artifact_dir, args)

    monkeypatch.setattr(local, "runner_command", aborting_on_openvino)
    out = tmp_path / "out"
    code, stdout, err = _export(run_cli, out, "onnx,openvino")
    assert code == 1 and "Traceback" not in err, err
    rows = {r["target"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["onnx"]["status"] == "ok"
    crashed = rows["openvino"]
    assert crashed["status"] == "error" and crashed["stage"] == "validate"
    (note,) = crashed["notes"]
    assert note.startswith("validate failed: ArtifactCrashed: the runtime crashed with SIGABRT"), note
    assert "openvino fp32: error: validate failed: ArtifactCrashed" in stdout


def test_the_probe_passes_a_healthy_artifact_and_leaves_ordinary_errors_to_validation(run_cli, tmp_path, monkeypatch):
    import sys

    import numpy as np

    from edgekit.device.transports import local
    from edgekit.device.transports.base import BenchOptions, RunnerCrashed
    from edgekit.validate.probe import probe_artifact

    out = tmp_path / "out"
    code, _, err = _export(run_cli, out, "onnx")
    assert code == 0, err
    adir = out / "onnx" / "fp32"
    (spec,) = json.loads((adir / "artifact.json").read_text())["inputs"]
    shape = [2, *(d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"][1:])]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    probe_artifact(adir, {spec["name"]: x}, threads=1)  # runs once, and returns
    probe_artifact(adir, {"not_an_input": x}, threads=1)  # the runner's own error: for validation to report
    segfault = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(local, "runner_command", lambda d, a: [sys.executable, "-c", segfault])
    with pytest.raises(RunnerCrashed, match="crashed with SIGSEGV"):
        local.run_local(adir, BenchOptions(warmup=0, iterations=1))
