"""``local``: the runner in a fresh subprocess of this machine's Python (peak RSS and load time are the
runtime's own, not those of the process that built the model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ...errors import DeviceError
from .base import RUNNER_FILE, ArtifactRef, BenchOptions, MissingOnDevice, Transport, outcome_of, read_runner_json


def run_local(artifact_dir: Path, opts: BenchOptions, python: str = sys.executable) -> dict[str, Any]:
    cmd = [python, str(RUNNER_FILE), str(artifact_dir), *opts.runner_args()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"benchmark of {artifact_dir} took longer than {opts.timeout_s:.0f} s; lower iterations"
        ) from None
    return read_runner_json(proc.stdout, proc.stderr, str(artifact_dir), python)


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
            except MissingOnDevice as exc:
                if exc.module == "numpy":
                    raise
                out.append(outcome_of(exc))
            except DeviceError as exc:
                out.append(outcome_of(exc))
        return out
