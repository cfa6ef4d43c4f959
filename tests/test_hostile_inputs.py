"""Bad input is caught at the edge, before any work: one line naming what and where, exit code 2, nothing written.
Internal errors are exit code 3 (one line; --debug shows the traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from .conftest import TINY_VIT, TINY_VIT_FLAGS, TinyConvNet, assert_one_line_error, bundle, cli_subprocess, tree

CONV = ["--input", "x:batch,1,8,8", "--precision", "fp32"]


def nan_convnet() -> torch.nn.Module:
    model = TinyConvNet()
    with torch.no_grad():
        model.fc.bias[3] = float("nan")
    return model


def raising_factory() -> torch.nn.Module:
    raise RuntimeError("the factory failed")


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "vit"
    bundle("vit", TINY_VIT).module.hf.save_pretrained(path)
    return path


def check(run_cli, tmp_path, args, pattern):
    """Run, expect a one-line exit-2 error with ``pattern``, and that tmp_path did not change."""
    before = tree(tmp_path)
    code, _, err = run_cli(*args)
    assert_one_line_error(code, err, pattern)
    assert tree(tmp_path) == before


def test_non_finite_calibration_and_validation_data(tmp_path, run_cli):
    calib = np.zeros((4, 1, 8, 8), np.float32)
    calib[2, 0, 3, 1] = np.nan
    np.savez(tmp_path / "calib.npz", pixel_values=calib)
    val = np.zeros((4, 1, 8, 8), np.float32)
    val[1, 0, 0, 5] = np.inf
    np.savez(tmp_path / "val.npz", pixel_values=val)
    out = tmp_path / "out"
    check(
        run_cli,
        tmp_path,
        ["export", "vit", *TINY_VIT_FLAGS, "--calib", tmp_path / "calib.npz", "--out", out],
        "input 'pixel_values' holds nan at index [2, 0, 3, 1]",
    )
    check(
        run_cli,
        tmp_path,
        ["export", "vit", *TINY_VIT_FLAGS, "--precision", "fp32", "--val", tmp_path / "val.npz", "--out", out],
        "validation data 'npz",
    )


def test_non_finite_weights(tmp_path, run_cli):
    state = bundle("vit", TINY_VIT).module.state_dict()
    name = next(iter(state))
    state[name].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "w.pt")
    out = tmp_path / "out"
    args = ["export", "vit", *TINY_VIT_FLAGS, "--weights", tmp_path / "w.pt", "--precision", "fp32", "--out", out]
    check(run_cli, tmp_path, args, f"weight '{name}' holds 1 NaN/Inf values")
    args = ["export", "tests.test_hostile_inputs:nan_convnet", *CONV, "--out", out]
    check(run_cli, tmp_path, args, "weight 'fc.bias' holds 1 NaN/Inf values")


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["export", "vit", "--calib", "digits", "--calib-samples", "0"], "--calib-samples: must be positive, got 0"),
        (["export", "vit", "--calib", "digits", "--calib-samples", "-5"], "--calib-samples: must be positive, got -5"),
        (["export", "vit", "--val", "random", "--val-samples", "100000000000000"], "must be at most 1,000,000"),
        (["export", "vit", "--iterations", "abc"], "--iterations: expected a whole number, got 'abc'"),
        (["bench", "RUN", "--threads", "0"], "--threads: must be positive, got 0"),
        (["bench", "RUN", "--threads", "-3"], "--threads: must be positive, got -3"),
        (["bench", "RUN", "--device", "local", "--time", "nan"], "--time: must be a positive finite number"),
        (["diagnose", "RUN", "--samples", "0"], "--samples: must be positive, got 0"),
        (["retrain", "r.yaml", "--steps", "0"], "--steps: must be positive, got 0"),
    ],
)
def test_counts_must_be_positive_and_bounded(tmp_path, run_cli, args, pattern):
    check(run_cli, tmp_path, args, pattern)


@pytest.mark.parametrize(
    ("section", "value", "pattern"),
    [
        ({"benchmark": {"iterations": 10**29}}, None, "iterations must be at most 10,000,000"),
        ({"benchmark": {"threads": 0}}, None, "threads must be positive, got 0"),
        ({"validation": {"data": {"source": "random", "samples": 10**14}}}, None, "samples must be at most 1,000,000"),
        ({"validation": {"budget": float("nan")}}, None, "budget must be a finite number, got nan"),
        ({"validation": {"budget": float("inf")}}, None, "budget must be a finite number, got inf"),
        ({"name": "../../x"}, None, "is not a plain name"),
    ],
)
def test_recipe_numbers_are_checked_by_recipe_check(tmp_path, run_cli, tiny_vit_recipe, section, value, pattern):
    tiny_vit_recipe.update(section)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_vit_recipe))
    assert ".nan" in path.read_text() or "nan" not in pattern  # YAML's own spelling, as a user writes it
    for command in (["recipe", "check"], ["run"]):
        check(run_cli, tmp_path, [*command, path, *(["--out", tmp_path / "o"] if command == ["run"] else [])], pattern)


def test_recipe_of_binary_bytes_and_bad_config_values(tmp_path, run_cli):
    (tmp_path / "r.yaml").write_bytes(bytes(range(256)))
    check(run_cli, tmp_path, ["recipe", "check", tmp_path / "r.yaml"], "not a text file")
    out = tmp_path / "out"
    args = ["export", "vit", *TINY_VIT_FLAGS, "--config", "hidden_size=abc", "--precision", "fp32", "--out", out]
    check(run_cli, tmp_path, args, "model 'vit' could not be built or loaded")
    args = ["export", "vit", "--config", "hidden_size=[", "--precision", "fp32", "--out", out]
    check(run_cli, tmp_path, args, "--config hidden_size: cannot read the value '['")


def test_damaged_checkpoints(tmp_path, run_cli, hf_checkpoint):
    out = tmp_path / "out"
    cases = {
        "truncated": lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:500]),
        "random": lambda p: (p / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096)),
        "mismatch": lambda p: (p / "config.json").write_text(
            json.dumps({**json.loads((p / "config.json").read_text()), "hidden_size": 64, "intermediate_size": 128})
        ),
    }
    for name, damage in cases.items():
        ckpt = Path(shutil.copytree(hf_checkpoint, tmp_path / name))
        damage(ckpt)
        check(run_cli, tmp_path, ["export", ckpt, "--precision", "fp32", "--out", out], "could not be built or loaded")


def test_factories_that_raise_or_do_not_import(tmp_path, run_cli, monkeypatch):
    (tmp_path / "badmod.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    cases = {
        "tests.test_hostile_inputs:raising_factory": "factory 'tests.test_hostile_inputs:raising_factory' raised",
        "badmod:build": "cannot import factory 'badmod:build': RuntimeError: broken at import",
        "no_such_module:build": "cannot import factory 'no_such_module:build'",
        "tests.test_hostile_inputs:missing": "cannot import factory",
    }
    for source, pattern in cases.items():
        check(run_cli, tmp_path, ["export", source, *CONV, "--out", out], pattern)


def test_tool_outputs_and_device_urls(tmp_path, run_copy, run_cli):
    trace = [{"latencyMs": 1.0, "computeMs": 0.5}, {"latencyMs": "fast", "computeMs": 0.5}]
    (tmp_path / "times.json").write_text(json.dumps(trace))
    args = ["report", "--ingest", tmp_path / "times.json", "--tool", "trtexec", "--out", tmp_path / "rep"]
    check(run_cli, tmp_path, args, "inference 1 has 'latencyMs' = 'fast', not a time in ms")
    for device, pattern in (
        ("ssh://pi@host?timeout=abc", "timeout=abc is not a whole number of seconds"),
        ("ssh://pi@[fe80::1", "cannot parse it (Invalid IPv6 URL)"),
        ("ssh://pi@host:99999", "the port is not a number"),
    ):
        check(run_cli, tmp_path, ["bench", run_copy, "--device", device, "--out", tmp_path / "dev"], pattern)


def test_exit_code_3_for_an_internal_error_and_debug_shows_the_traceback(tmp_path):
    """A bug (not bad input) is one line and exit 3, so scripts tell a crash from a result (1) or bad input (2)."""
    script = "import sys, edgekit.cli as c; c.cmd_targets = lambda a: 1 / 0; sys.exit(c.main(sys.argv[1:]))"
    env_args = [sys.executable, "-c", script]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    plain = subprocess.run([*env_args, "targets"], capture_output=True, text=True, env=env, check=False)
    assert_one_line_error(plain.returncode, plain.stderr, "internal error: ZeroDivisionError", expected=3)
    assert "--debug" in plain.stderr
    debug = subprocess.run([*env_args, "--debug", "targets"], capture_output=True, text=True, env=env, check=False)
    assert debug.returncode == 3 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_quiet_silences_transformers_progress_and_load_reports(tmp_path, hf_checkpoint):
    """-q: no 'Loading weights' bar (and no load report) from transformers; without it they show (the check works)."""
    args = ["export", hf_checkpoint, "--precision", "fp32", "--no-bench", "--val", "random", "--val-samples", "4"]
    code, _, err = cli_subprocess(*args, "--out", tmp_path / "q")
    assert code == 0, err
    assert "Loading weights" not in err and "LOAD REPORT" not in err.upper(), err
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "edgekit", *map(str, args), "--out", str(tmp_path / "loud")]
    loud = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert loud.returncode == 0 and "Loading weights" in loud.stderr
