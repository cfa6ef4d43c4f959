"""``adb`` or ``adb:SERIAL``: an Android device without Python. Pushes each .tflite artifact and runs the
TFLite ``benchmark_model`` binary the user gives (``--benchmark-binary``: a host file, pushed to the device,
or a path already on it), then parses its output into ``edgekit-bench/1``.

``adb shell`` joins its arguments into one command line for the device's shell, so every argument is
``shlex.quote``-d. Only LiteRT artifacts run here; the others are reported as skipped for this device.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ...errors import DeviceError
from ..parsers import benchmark_model
from .base import ArtifactRef, BenchOptions, Transport, outcome_of

REMOTE_ROOT = "/data/local/tmp"
_SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9_./-]+$")
_PROPS = {
    "hostname": "ro.product.model",
    "machine": "ro.product.cpu.abi",
    "release": "ro.build.version.release",
    "processor": "ro.soc.model",
}


class AdbTransport(Transport):
    scheme = "adb"

    def __init__(self, spec: str):
        super().__init__(spec)
        self.serial = spec.partition(":")[2] or None
        if self.serial is not None and (not self.serial or self.serial.startswith("-")):
            raise DeviceError(f"device '{spec}': expected adb or adb:SERIAL (see adb devices)")

    def _adb(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["adb", *(["-s", self.serial] if self.serial else []), *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: 'adb {args[0]}' took longer than {timeout:.0f} s") from None

    def _shell(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return self._adb("shell", " ".join(shlex.quote(a) for a in argv), timeout=timeout)

    def _push(self, local: Path, remote: str) -> None:
        proc = self._adb("push", str(local), remote, timeout=600)
        if proc.returncode != 0:
            raise DeviceError(f"{self.name}: adb push {local.name} failed: {(proc.stderr or proc.stdout).strip()}")

    def _check_device(self) -> None:
        if shutil.which("adb") is None:
            raise DeviceError("'adb' is not installed here; install Android platform-tools (apt-get install adb)")
        proc = self._adb("get-state", timeout=30)
        if proc.returncode != 0 or proc.stdout.strip() != "device":
            why = (proc.stderr or proc.stdout).strip() or "no device"
            raise DeviceError(f"{self.name}: no usable adb device ({why}); check 'adb devices' and the serial")

    def device_info(self) -> dict[str, Any]:
        info = {key: self._shell(["getprop", prop], 30).stdout.strip() or None for key, prop in _PROPS.items()}
        cores = self._shell(["nproc"], 30).stdout.strip()
        mem = re.search(r"MemTotal:\s+(\d+) kB", self._shell(["cat", "/proc/meminfo"], 30).stdout)
        return {
            "hostname": info["hostname"],
            "machine": info["machine"],
            "system": "Android",
            "release": info["release"],
            "processor": info["processor"],
            "cpu_count": int(cores) if cores.isdigit() else None,
            "memory_mb": int(mem.group(1)) / 1024 if mem else None,
            "python": None,
            "numpy": None,
        }

    def _binary(self, opts: BenchOptions, remote: str) -> str:
        if not opts.benchmark_binary:
            raise DeviceError(
                f"{self.name}: adb devices run TFLite's benchmark_model; pass --benchmark-binary PATH "
                "(a host file to push, or a path on the device)"
            )
        local = Path(opts.benchmark_binary).expanduser()
        if not local.is_file():
            return opts.benchmark_binary
        self._push(local, f"{remote}/benchmark_model")
        self._shell(["chmod", "755", f"{remote}/benchmark_model"])
        return f"{remote}/benchmark_model"

    def _args(self, binary: str, graph: str, opts: BenchOptions) -> list[str]:
        argv = [binary, f"--graph={graph}", f"--num_threads={opts.threads}", f"--warmup_runs={opts.warmup}"]
        if opts.time_s:  # as many runs as fit in the budget
            return [*argv, "--num_runs=1", f"--min_secs={opts.time_s}", f"--max_secs={opts.time_s}"]
        return [*argv, f"--num_runs={opts.iterations}", "--min_secs=0", "--warmup_min_secs=0"]

    def bench(self, artifacts: list[ArtifactRef], opts: BenchOptions) -> list[dict[str, Any]]:
        self._check_device()
        made = self._shell(["mktemp", "-d", f"{REMOTE_ROOT}/edgekit-bench.XXXXXXXX"], 30)
        remote = made.stdout.strip()
        if made.returncode != 0 or not _SAFE_REMOTE_DIR.match(remote):
            raise DeviceError(f"{self.name}: cannot create a directory under {REMOTE_ROOT}: {made.stderr.strip()}")
        try:
            binary = self._binary(opts, remote)
            device = self.device_info()
            return [self._run_one(ref, i, binary, remote, device, opts) for i, ref in enumerate(artifacts)]
        finally:
            self._shell(["rm", "-rf", remote], 60)

    def _run_one(
        self, ref: ArtifactRef, i: int, binary: str, remote: str, device: dict[str, Any], opts: BenchOptions
    ) -> dict[str, Any]:
        if ref.runtime != "litert":
            return {"skipped": f"adb devices run .tflite artifacts only (benchmark_model); this is {ref.target}"}
        graph = f"{remote}/a{i}.tflite"
        try:
            self._push(ref.path / ref.file, graph)
            proc = self._shell(self._args(binary, graph, opts), opts.timeout_s)
            text = proc.stdout + "\n" + proc.stderr
            if proc.returncode != 0:
                tail = (text.strip().splitlines() or ["no output"])[-1]
                raise DeviceError(f"{self.name}: benchmark_model failed on {ref.rel}: {tail}")
            result = benchmark_model.parse(text, f"benchmark_model output for {ref.rel}")
        except DeviceError as exc:
            return outcome_of(exc)
        result.update(artifact=ref.rel, precision=ref.precision, batch=1, device=device, time_budget_s=opts.time_s)
        if result["warmup"] is None:
            result["warmup"] = opts.warmup
        return {"result": result}
