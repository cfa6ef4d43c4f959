"""Latency harness: runs the standalone device runner in a subprocess per artifact.

A fresh process per artifact means the reported peak RSS and load time are the runtime's own (not those of
the PyTorch process that built it), and one artifact's allocations do not slow the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..device import runner
from ..errors import DeviceError
from ..recipe import BenchSpec


def bench_local(artifact_dir: Path, spec: BenchSpec, sequence: int = 64, timeout: float = 900) -> dict:
    cmd = [
        sys.executable,
        str(Path(runner.__file__)),
        str(artifact_dir),
        "--warmup",
        str(spec.warmup),
        "--iterations",
        str(spec.iterations),
        "--threads",
        str(spec.threads),
        "--batch",
        str(spec.batch_size),
        "--sequence",
        str(sequence),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"benchmark of {artifact_dir} took longer than {timeout:.0f} s; lower iterations") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"benchmark runner failed on {artifact_dir}: {tail}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise DeviceError(f"benchmark runner failed on {artifact_dir}: {result['error']}")
    return result
