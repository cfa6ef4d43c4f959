"""The standalone runner: time budget, accuracy sets, runtime selection, clear errors, standalone-ness."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench import find_artifacts
from edgekit.device import runner
from edgekit.device.accuracy import write_set
from edgekit.device.transports import BenchOptions, open_device
from edgekit.errors import DeviceError

from .device_envs import device_python
from .device_models import IN, onnx_artifact, openvino_artifact, reference

RUNNER = Path(runner.__file__).parent  # the runner directory, run as `python RUNNER ...`


def _run(python: Path | str, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([str(python), str(RUNNER), *map(str, args)], capture_output=True, text=True, timeout=300)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_runner_imports_nothing_from_edgekit():
    for file in RUNNER.glob("*.py"):
        tree = ast.parse(file.read_text(), feature_version=(3, 8))  # device images ship old interpreters
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not [m for m in modules if m.startswith("edgekit")], file.name
        assert all(n.level <= 1 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)), file.name  # no ..


def test_runner_copied_alone_runs(tmp_path):
    """The directory works with nothing but itself next to the artifact (what the ssh transport ships)."""
    alone = tmp_path / "elsewhere" / "runner"
    shutil.copytree(RUNNER, alone, ignore=shutil.ignore_patterns("__pycache__"))
    art = onnx_artifact(tmp_path / "a")
    proc = subprocess.run(
        [sys.executable, "-I", str(alone), str(art), "--iterations", "5", "--warmup", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert json.loads(proc.stdout)["iterations"] == 5


def test_time_budget_replaces_iterations(tmp_path):
    art = onnx_artifact(tmp_path / "a")
    code, rec = _run(sys.executable, art, "--time", "0.3", "--iterations", "3")
    assert code == 0 and rec["time_budget_s"] == 0.3
    assert rec["iterations"] > 3
    spent_s = rec["mean_ms"] * rec["iterations"] / 1000
    assert spent_s <= 0.3 + rec["max_ms"] / 1000 + 0.05


@pytest.mark.parametrize("make", [onnx_artifact, openvino_artifact])
def test_accuracy_set_shipped_with_the_artifact(tmp_path, make):
    art = make(tmp_path / "a")
    x = np.random.default_rng(3).standard_normal((40, IN)).astype(np.float32)
    ref = reference(x)
    labels = ref.argmax(1)
    labels[:10] = (labels[:10] + 1) % ref.shape[1]  # 10 of 40 labels wrong: top-1 must say 75%
    write_set(art, {"x": x}, ref, labels)
    rec = runner.benchmark(art, warmup=1, iterations=3, batch=8)
    acc = rec["accuracy"]
    assert acc["samples"] == 40 and acc["file"] == "accuracy.npz"
    assert acc["cosine_mean"] > 0.9999 and acc["agreement_pct"] == 100.0
    assert acc["top1_pct"] == pytest.approx(75.0)
    # a reference that does not belong to these inputs is caught
    write_set(art, {"x": x}, ref[::-1], None)
    acc = runner.benchmark(art, warmup=0, iterations=1)["accuracy"]
    assert acc["agreement_pct"] < 50 and acc["cosine_mean"] < 0.9 and acc["top1_pct"] is None
    assert runner.benchmark(art, warmup=0, iterations=1, accuracy_file="")["accuracy"] is None


def test_accuracy_set_missing_input_is_named(tmp_path):
    art = onnx_artifact(tmp_path / "a")
    np.savez(art / "accuracy.npz", reference=np.zeros((2, 10), np.float32))
    code, rec = _run(sys.executable, art, "--iterations", "1")
    assert code == 3 and "lacks arrays ['x']" in rec["error"]


def test_missing_runtime_names_module_and_fix(tmp_path):
    art = onnx_artifact(tmp_path / "a")
    numpy_only = device_python(tmp_path / "env", "numpy")
    code, rec = _run(numpy_only, art, "--iterations", "1")
    assert code == 3 and rec["missing_module"] == "onnxruntime" and rec["fix"] == "pip install onnxruntime"
    bare = device_python(tmp_path / "bare", "none")
    code, rec = _run(bare, art)
    assert code == 3 and rec["missing_module"] == "numpy" and rec["fix"] == "pip install numpy"


def test_native_runtime_of_a_tensorrt_artifact_is_tensorrt(tmp_path):
    """A tensorrt artifact is validated as ONNX here but is a TensorRT engine on its device: 'native' picks
    TensorRT, and where it is missing the error says what to install (never a silent ONNX Runtime run)."""
    art = onnx_artifact(tmp_path / "t", target="tensorrt")
    assert runner.choose_runtime(runner.read_meta(art), "native") == "tensorrt"
    assert runner.choose_runtime(runner.read_meta(art), None) == "onnxruntime"
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    code, rec = _run(sys.executable, art, "--runtime", "native", "--iterations", "1")
    assert code == 3 and rec["missing_module"] == "tensorrt" and "pip install tensorrt" in rec["fix"]


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML predicts on macOS")
def test_coreml_off_macos_says_so(tmp_path):
    art = tmp_path / "c"
    art.mkdir()
    meta = json.loads((onnx_artifact(tmp_path / "o") / "artifact.json").read_text())
    (art / "artifact.json").write_text(json.dumps({**meta, "target": "coreml", "runtime": "coreml"}))
    code, rec = _run(sys.executable, art)
    assert code == 3 and "Core ML prediction needs macOS" in rec["error"]


def test_local_device_records_per_artifact_errors(tmp_path, run_cli):
    """On a device, an artifact whose runtime is missing is an error entry; the others are measured."""
    onnx_artifact(tmp_path / "run" / "onnx" / "fp32")
    onnx_artifact(tmp_path / "run" / "tensorrt" / "fp32", target="tensorrt")
    code, out, err = run_cli("bench", tmp_path / "run", "--device", "local", "--iterations", "5", "--warmup", "1")
    assert code == 0, err
    rep = json.loads((tmp_path / "run" / "devices" / "report.json").read_text())
    status = {e["artifact"]: e["status"] for e in rep["entries"]}
    assert status["onnx/fp32"] == "measured"
    if importlib_missing("tensorrt"):
        assert status["tensorrt/fp32"] == "error"
        assert "tensorrt" in (tmp_path / "run" / "devices" / "report.md").read_text()


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_device_spec_errors(tmp_path, run_cli):
    onnx_artifact(tmp_path / "a")
    for spec, words in (
        ("sssh://x", "did you mean 'ssh'"),
        ("ssh://host:notaport", "port is not a number"),
        ("ssh://h?pyhton=x", "did you mean 'python'"),
        ("local:x", "takes no options"),
    ):
        code, _, err = run_cli("bench", tmp_path / "a", "--device", spec)
        assert code == 2 and words in err, (spec, err)
    code, _, err = run_cli("bench", tmp_path / "a", "--time", "1")
    assert code == 2 and "go with --device" in err
    with pytest.raises(DeviceError, match="no edgekit artifacts"):
        find_artifacts(tmp_path / "nothing-here")


def test_runner_args_are_one_builder():
    assert BenchOptions(time_s=2.0).runner_args()[-4:] == ["--time", "2.0", "--runtime", "native"]
    assert "--no-accuracy" in BenchOptions(accuracy=False, runtime=None).runner_args()
    assert open_device("ssh://me@[::1]:2222?python=/opt/py").name == "ssh://me@[::1]:2222"
    assert open_device("adb:emulator-5554").slug == "adb-emulator-5554"


def test_accuracy_samples_ship_with_a_run_and_the_manifest_covers_them(tmp_path, run_cli, tiny_vit_recipe):
    from .conftest import write_yaml

    tiny_vit_recipe["targets"] = [{"name": "onnx", "precisions": ["fp32"]}]
    code, _, err = run_cli(
        "run", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe), "--out", tmp_path / "run", "--no-bench"
    )
    assert code == 0, err
    code, _, err = run_cli(
        "bench", tmp_path / "run", "--device", "local", "--accuracy-samples", "10", "--iterations", "3", "--warmup", "1"
    )
    assert code == 0, err
    files = json.loads((tmp_path / "run" / "manifest.json").read_text())["files"]
    assert "onnx/fp32/accuracy.npz" in files
    rep = json.loads((tmp_path / "run" / "devices" / "report.json").read_text())
    assert rep["entries"][0]["result"]["accuracy"]["samples"] == 10
