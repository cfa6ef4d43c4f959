"""Latency harness: runs the standalone device runner in a subprocess per artifact.

A fresh process per artifact means the reported peak RSS and load time are the runtime's own (not those of
the PyTorch process that built it), and one artifact's allocations do not slow the next. This is the
``local`` device transport with the run's benchmark settings; ``edgekit bench DIR --device`` runs the very
same runner on other devices.
"""

from __future__ import annotations

from pathlib import Path

from ..device.transports.base import BenchOptions
from ..device.transports.local import run_local
from ..recipe import BenchSpec


def bench_local(artifact_dir: Path, spec: BenchSpec, sequence: int = 64, timeout: float = 900) -> dict:
    opts = BenchOptions(
        warmup=spec.warmup,
        iterations=spec.iterations,
        threads=spec.threads,
        batch=spec.batch_size,
        sequence=sequence,
        runtime=None,  # the artifact's own runtime: what its validation ran
        accuracy=False,
        timeout_s=timeout,
    )
    return run_local(Path(artifact_dir), opts)
