"""SIGTERM and SIGHUP stop edgekit like Ctrl-C: the benchmark child is killed, temporary output removed, one line,
exit code 128 + the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY_VIT_FLAGS, assert_one_line_error


def runner_children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` and whose command line runs the device runner."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"device/runner\x00" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_during_benchmark(args: list[str], signum: int, cwd: Path) -> tuple[int, str, list[int]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "-q", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not children and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            children = runner_children(proc.pid)
        assert children, f"no runner child appeared (exit {proc.poll()})"
        time.sleep(0.5)  # the runner is timing now
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err, children


@pytest.mark.parametrize(
    ("command", "signum"),
    [("export", signal.SIGTERM), ("bench", signal.SIGHUP), ("bench", signal.SIGTERM), ("bench", signal.SIGINT)],
)
def test_stop_signal_during_a_benchmark(tmp_path, tiny_run, command, signum):
    out = tmp_path / "out"
    if command == "export":  # the run's own benchmark stage, inside its temporary run directory
        args = ["export", "vit", *TINY_VIT_FLAGS, "--precision", "fp32", "--val", "digits", "--val-samples", "8"]
        args += ["--iterations", "10000000", "--warmup", "0", "--out", out]
    else:
        args = ["bench", tiny_run, "--device", "local", "--time", "600", "--out", out]
    code, err, children = stop_during_benchmark(args, signum, tmp_path)
    time.sleep(0.2)
    orphans = [pid for pid in children if alive(pid)]
    for pid in orphans:  # a failing run must not leave a benchmark spinning on the machine
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "the runner child outlived edgekit"
    name = signal.Signals(signum).name
    assert_one_line_error(code, err, f"interrupted ({name}); partial output removed", expected=128 + signum)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no .out.tmp-* either


def test_sigterm_during_training_checkpoints_and_exits_143(tmp_path):
    """Training handles every stop signal as Ctrl-C: a checkpoint for --resume, and the signal's own exit code."""
    import numpy as np

    from edgekit.data import DataSet
    from edgekit.errors import TrainingInterrupted
    from edgekit.recipe import DataSpec, TrainSpec
    from edgekit.signals import Terminated
    from edgekit.train.trainer import train

    from .conftest import tiny_convnet

    rng = np.random.default_rng(0)
    data = DataSet({"x": rng.normal(size=(32, 1, 8, 8)).astype(np.float32)}, rng.integers(0, 10, 32), "noise")
    calls = []

    def objective(model, xs, y):
        calls.append(1)
        if len(calls) == 3:
            raise Terminated(signal.SIGTERM)
        out = model(*xs)
        return out.pow(2).mean(), out

    objective.name = "labels"
    spec = TrainSpec(DataSpec("random"), steps=10, batch_size=8)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_convnet(), ["x"], data, spec, objective, tmp_path / "ck")
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert (tmp_path / "ck" / "last.pt").is_file()
