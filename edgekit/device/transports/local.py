"""``local``: the runner in a fresh subprocess of this machine's Python (peak RSS and load time are the
runtime's own, not those of the process that built the model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ...errors import DeviceError
from .base import (
    RUNNER_DIR,
    ArtifactRef,
    BenchOptions,
    DeviceTimeout,
    RunnerCrashed,
    Transport,
    outcome_of,
    read_runner_json,
)


def runner_command(artifact_dir: Path, args: list[str]) -> list[str]:
    """The runner on one artifact, in this machine's Python (tests swap it for a command that crashes)."""
    return [sys.executable, str(RUNNER_DIR), str(artifact_dir), *args]


def run_local(artifact_dir: Path, opts: BenchOptions, inputs: Path | None = None) -> dict[str, Any]:
    """One runner record for ``artifact_dir``; ``inputs``: an .npz of one array per input name to feed instead of
    synthetic inputs. Raises :class:`RunnerCrashed` when a signal killed the runner."""
    args = opts.runner_args() + (["--inputs", str(inputs)] if inputs is not None else [])
    cmd = runner_command(artifact_dir, args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceTimeout(
            f"benchmark of {artifact_dir} took longer than {opts.timeout_s:.0f} s; lower iterations"
        ) from None
    if proc.returncode < 0:
        raise RunnerCrashed(str(artifact_dir), -proc.returncode)
    return read_runner_json(proc.stdout, proc.stderr, str(artifact_dir), sys.executable)


class LocalTransport(Transport):
    scheme = "local"

    def __init__(self, spec: str = "local"):
        if spec != "local":
            raise DeviceError(f"device '{spec}': the local device takes no options; write just 'local'")
        super().__init__(spec)

    def bench(self, artifacts: list[ArtifactRef], opts: BenchOptions) -> list[dict[str, Any]]:
        out = []
        for ref in artifacts:
            try:
                out.append({"result": run_local(ref.path, opts)})
            except DeviceError as exc:  # this Python has numpy (edgekit needs it), so only the runtime can be missing
                out.append(outcome_of(exc))
        return out
