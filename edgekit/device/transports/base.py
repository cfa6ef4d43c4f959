"""What every transport shares: benchmark options, the artifacts to run, and reading the runner's JSON.

A transport moves artifacts (and the standalone runner, where the device runs Python) to a device, runs them
there and returns one outcome per artifact: ``{"result": <edgekit-bench/1 record>}`` or ``{"error": ...}``.
Whole-device failures (unreachable host, no numpy on the device) raise :class:`DeviceError` instead.
"""

from __future__ import annotations

import json
import re
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...checks import require_counts, require_finite_numbers
from ...errors import DeviceError
from .. import runner

RUNNER_DIR = Path(runner.__file__).parent  # run as `python RUNNER_DIR ARTIFACT ...`; shipped whole


@dataclass(frozen=True)
class BenchOptions:
    warmup: int = 20
    iterations: int = 200
    threads: int = 2
    batch: int = 1
    sequence: int = 64
    time_s: float | None = None  # time budget per artifact; replaces iterations
    runtime: str | None = "native"  # None: the artifact's validation runtime (how edgekit times it here)
    accuracy: bool = True  # run the artifact's accuracy.npz when it ships one
    benchmark_binary: str | None = None  # TFLite benchmark_model, for devices without Python (adb)
    timeout_s: float = 900

    def __post_init__(self) -> None:
        try:
            require_counts(iterations=self.iterations, threads=self.threads, batch=self.batch, sequence=self.sequence)
            require_counts(0, warmup=self.warmup)
            require_finite_numbers(time_s=self.time_s, timeout_s=self.timeout_s)
        except ValueError as exc:
            raise DeviceError(f"benchmark options: {exc}") from None

    def runner_args(self) -> list[str]:
        """Runner flags: one builder for every transport, so local and remote runs are the same measurement."""
        args = ["--warmup", str(self.warmup), "--threads", str(self.threads), "--batch", str(self.batch)]
        args += ["--sequence", str(self.sequence)]
        args += ["--time", str(self.time_s)] if self.time_s else ["--iterations", str(self.iterations)]
        if self.runtime:
            args += ["--runtime", self.runtime]
        if not self.accuracy:
            args.append("--no-accuracy")
        return args


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact directory to benchmark, and how the report names it."""

    path: Path
    rel: str  # path relative to the run directory ("onnx/int8"): the artifact's name across devices
    target: str
    precision: str
    runtime: str
    file: str
    quantizer: str | None = None

    @classmethod
    def read(cls, path: Path, rel: str) -> ArtifactRef:
        meta = runner.read_meta(path)
        return cls(path, rel, meta["target"], meta["precision"], meta["runtime"], meta["file"], meta.get("quantizer"))


class DeviceTimeout(DeviceError):
    """One artifact's benchmark ran past its time limit (an outcome of that artifact, not of the device)."""


class MissingOnDevice(DeviceError):
    """The device's Python lacks a module the runner or the artifact's runtime needs."""

    def __init__(self, message: str, module: str):
        super().__init__(message)
        self.module = module


class RunnerCrashed(DeviceError):
    """The runner process was killed by a signal: the runtime aborted or segfaulted in native code, so the
    runner could not report an error of its own. In-process, the same crash would end edgekit's process."""

    def __init__(self, where: str, signum: int):
        try:
            self.signal = signal.Signals(signum).name
        except ValueError:
            self.signal = f"signal {signum}"
        super().__init__(
            f"the runtime crashed with {self.signal} (a native abort or segfault, not a Python error) on {where}; "
            f"reproduce: python {RUNNER_DIR} {where} --iterations 1"
        )


def read_runner_json(stdout: str, stderr: str, where: str, python: str) -> dict[str, Any]:
    """The runner's last JSON line, or a DeviceError saying what failed and how to fix it."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"benchmark runner failed on {where}: {tail}")
    result = json.loads(lines[-1])
    module = result.get("missing_module")
    if module:
        raise MissingOnDevice(
            f"{where}: the device's python ({python}) lacks the module '{module}'; "
            f"fix: {result.get('fix') or 'pip install ' + module} on the device for that python",
            module,
        )
    if "error" in result:
        raise DeviceError(f"benchmark runner failed on {where}: {result['error']}")
    return result


class Transport(ABC):
    scheme: ClassVar[str]

    def __init__(self, spec: str):
        self.spec = spec

    @property
    def name(self) -> str:
        """How the device is named in reports (no credentials, no query options)."""
        return self.spec

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name (DIR/devices/<slug>.json)."""
        return re.sub(r"[^A-Za-z0-9@._-]+", "-", self.name.replace("://", "-")).strip("-")

    @abstractmethod
    def bench(self, artifacts: list[ArtifactRef], opts: BenchOptions) -> list[dict[str, Any]]:
        """One outcome per artifact, in order: {"result": record} or {"error": message}."""


def outcome_of(exc: DeviceError) -> dict[str, Any]:
    return {"error": str(exc)}
