"""A crash probe: run an artifact once in a subprocess before edgekit runs it in its own process.

Runtimes are native code. When one aborts or segfaults on an artifact (LiteRT's XNNPACK delegate did on a
mis-quantized mask), no ``except`` catches it: validating in-process would end ``edgekit run`` and every target
after it. The standalone runner, fed the first validation batch, meets such a crash in a child process instead,
and the crash becomes that artifact's error row. Any other runner failure is left to in-process validation,
which reports it with more context.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..device.transports.base import BenchOptions, RunnerCrashed
from ..device.transports.local import run_local
from ..errors import DeviceError

PROBE_TIMEOUT_S = 600.0


class ArtifactCrashed(DeviceError):
    """Running the artifact killed the runtime's process (the probe's subprocess, not edgekit's)."""


def probe_artifact(path: Path, feeds: dict[str, np.ndarray], threads: int) -> None:
    """Run the artifact at ``path`` once on ``feeds`` (one batch, keyed by input name) in the runtime its validation
    uses; raise :class:`ArtifactCrashed` if that kills the process."""
    batch = len(next(iter(feeds.values())))
    opts = BenchOptions(
        warmup=0, iterations=1, threads=threads, batch=batch, runtime=None, accuracy=False, timeout_s=PROBE_TIMEOUT_S
    )
    with tempfile.TemporaryDirectory(prefix="edgekit-probe-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **feeds)
        try:
            run_local(path, opts, inputs)
        except RunnerCrashed as exc:
            raise ArtifactCrashed(f"{exc} (run once in a subprocess; not run in edgekit's process)") from None
        except DeviceError:  # an ordinary failure: in-process validation meets it and says more
            return
