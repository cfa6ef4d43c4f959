"""The ssh transport against a real OpenSSH server on loopback, with a separate Python environment as the device.

What "the same measurement" means here: ``edgekit bench DIR --device local --device ssh://...`` gives records
with identical keys (schema edgekit-bench/1) and settings, each with a measured p50 (how close the two p50s are is
a timing question for a benchmark, not a test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .device_envs import device_python, ssh_server
from .device_models import artifact_tree, onnx_artifact


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    with ssh_server(tmp_path_factory.mktemp("sshd")) as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


@pytest.fixture(scope="module")
def device_envs(tmp_path_factory):
    """Three device interpreters; the full one sits in a path with a space and a '$' so an unquoted remote
    argument would break the command."""
    root = tmp_path_factory.mktemp("device")
    return {
        "all": device_python(root / "device env $HOME", "all"),
        "numpy": device_python(root / "numpy-only", "numpy"),
        "none": device_python(root / "bare", "none"),
    }


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """An onnx and an openvino artifact (onnx/fp32, openvino/fp32, as in a run directory)."""
    return artifact_tree(tmp_path_factory.mktemp("arts"))


def _remote_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("edgekit-bench.*")}


def test_ssh_bench_same_schema_as_local(ssh, device_envs, artifacts, tmp_path, run_cli):
    """The same artifacts on the local and the ssh device, 0.4 s of timed runs each: one schema, one settings set,
    a measured p50 on both (how close the two p50s are is a benchmark, not a test: README, "ssh vs local")."""
    before = _remote_dirs()
    out = tmp_path / "merged"
    spec = ssh.spec(device_envs["all"])
    ssh_name = f"ssh://{ssh.user}@127.0.0.1:{ssh.port}"
    code, _, err = run_cli("bench", artifacts, "--device", "local", "--device", spec, "--time", "0.4", "--out", out)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["devices"]) == sorted(["local", ssh_name])
    cells = {(e["device"], e["artifact"]): e for e in report["entries"]}
    for art in ("onnx/fp32", "openvino/fp32"):
        local, remote = cells[("local", art)]["result"], cells[(ssh_name, art)]["result"]
        assert cells[(ssh_name, art)]["status"] == "measured"
        assert local["schema"] == remote["schema"] == "edgekit-bench/1"
        assert set(local) == set(remote)
        assert set(local["device"]) == set(remote["device"])
        assert set(local["settings"]) == set(remote["settings"])
        assert remote["runtime"] == local["runtime"] and remote["time_budget_s"] == local["time_budget_s"] == 0.4
        assert 0 < remote["p50_ms"] <= remote["p99_ms"] and 0 < local["p50_ms"] <= local["p99_ms"]
        assert remote["iterations"] > 0 and local["iterations"] > 0
    # merged report renders with its plots; the remote temporary directory is gone again
    assert (out / "plots" / "device_latency.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert ssh_name in html and html.count("data:image/png;base64,") == 2
    assert ssh_name in (out / "report.md").read_text()
    assert _remote_dirs() == before
    # each device's outcomes are kept for later merges (edgekit report DIR ...)
    assert len(list(out.glob("*.json"))) == 3


def test_ssh_time_budget_reaches_the_device(ssh, device_envs, tmp_path, run_cli):
    art = onnx_artifact(tmp_path / "a" / "onnx" / "fp32")
    code, _, err = run_cli(
        "bench", tmp_path / "a", "--device", ssh.spec(device_envs["all"]), "--time", "0.2", "--out", tmp_path / "o"
    )
    assert code == 0, err
    (entry,) = json.loads((tmp_path / "o" / "report.json").read_text())["entries"]
    rec = entry["result"]
    assert rec["time_budget_s"] == 0.2 and rec["iterations"] >= 1  # the budget reached the device
    assert rec["mean_ms"] * rec["iterations"] < 200 + rec["max_ms"] + 50
    assert art.is_dir()


def test_device_without_runtime_is_a_clear_error(ssh, device_envs, artifacts, tmp_path, run_cli):
    code, _, err = run_cli("bench", artifacts, "--device", ssh.spec(device_envs["numpy"]), "--out", tmp_path / "o")
    assert code == 2
    assert "lacks the module 'onnxruntime'" in err and "pip install onnxruntime" in err


def test_device_without_numpy_is_a_clear_error(ssh, device_envs, artifacts, tmp_path, run_cli):
    before = _remote_dirs()
    code, _, err = run_cli("bench", artifacts, "--device", ssh.spec(device_envs["none"]), "--out", tmp_path / "o")
    assert code == 2
    assert "lacks the module 'numpy'" in err and "pip install numpy" in err
    assert _remote_dirs() == before


def test_unknown_host_key_is_refused(ssh, device_envs, artifacts, tmp_path, run_cli):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code, _, err = run_cli("bench", artifacts, "--device", ssh.spec(device_envs["all"], empty), "--out", tmp_path / "o")
    assert code == 2
    assert "host key is not in known_hosts" in err and "ssh-keyscan" in err


def test_missing_python_on_device(ssh, tmp_path, artifacts, run_cli):
    code, _, err = run_cli(
        "bench", artifacts, "--device", ssh.spec(tmp_path / "no" / "python3"), "--out", tmp_path / "o"
    )
    assert code == 2
    assert "no python at" in err and "?python=" in err


def test_artifact_tree_fixture_is_two_artifacts(tmp_path):
    from edgekit.bench import find_artifacts

    refs = find_artifacts(artifact_tree(tmp_path / "t"))
    assert [(r.rel, r.runtime) for r in refs] == [("onnx/fp32", "onnxruntime"), ("openvino/fp32", "openvino")]
