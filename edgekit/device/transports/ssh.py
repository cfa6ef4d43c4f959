"""``ssh://user@host[:port][?python=...&identity=...&known_hosts=...&config=...&timeout=...]``.

Copies the standalone runner and the artifacts into a fresh temporary directory on the device (one scp),
runs the runner there with the device's Python, reads its JSON, and removes the directory again.

Security: host keys are always checked (``StrictHostKeyChecking=yes``; an unknown host is an error, never
silently trusted), ``BatchMode=yes`` (no password prompts), and the remote command line is built from
``shlex.quote``-d arguments only. The remote directory comes from ``mktemp`` and is checked to hold only
safe characters before it is used in an scp destination.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ...errors import DeviceError, did_you_mean
from .base import (
    RUNNER_DIR,
    ArtifactRef,
    BenchOptions,
    DeviceTimeout,
    MissingOnDevice,
    Transport,
    outcome_of,
    read_runner_json,
)

OPTIONS = ("python", "identity", "known_hosts", "config", "timeout")
_SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9_./-]+$")


class SshTransport(Transport):
    scheme = "ssh"

    def __init__(self, spec: str):
        super().__init__(spec)
        try:
            url = urlsplit(spec)
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            raise DeviceError(
                f"device '{spec}': cannot parse it ({exc}); write ssh://user@host[:port] or ssh://user@[::1]"
            ) from None
        try:
            self.port = url.port
        except ValueError:
            raise DeviceError(
                f"device '{spec}': the port is not a number from 0 to 65535; write ssh://user@host:PORT"
            ) from None
        self.user, self.host = url.username, url.hostname
        if not self.host or self.host.startswith("-") or (self.user or "").startswith("-"):
            raise DeviceError(f"device '{spec}': expected ssh://user@host[:port][?python=/path/to/python3]")
        query = parse_qs(url.query, keep_blank_values=True)
        for key in query:
            if key not in OPTIONS:
                raise DeviceError(f"device '{spec}': unknown option '{key}'{did_you_mean(key, OPTIONS)}")
        opt = {k: v[-1] for k, v in query.items()}
        self.python = opt.get("python") or "python3"
        self.identity, self.known_hosts, self.config = opt.get("identity"), opt.get("known_hosts"), opt.get("config")
        timeout = opt.get("timeout") or "20"
        if not timeout.isdigit() or not 0 < int(timeout) <= 3600:
            raise DeviceError(f"device '{spec}': timeout={timeout} is not a whole number of seconds from 1 to 3600")
        self.timeout = int(timeout)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"

    @property
    def _target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-F", self.config] if self.config else []
        opts += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={self.timeout}"]
        if self.identity:
            opts += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.port:
            opts += [port_flag, str(self.port)]
        return opts

    def _fail(self, what: str, stderr: str) -> DeviceError:
        text = stderr.strip()
        if "Host key verification failed" in text or "host key is known" in text:
            port = f"-p {self.port} " if self.port else ""
            return DeviceError(
                f"{self.name}: {what}: the device's host key is not in known_hosts (host keys are always "
                f"checked); verify its fingerprint, then: ssh-keyscan {port}{self.host} >> "
                f"{self.known_hosts or '~/.ssh/known_hosts'}"
            )
        tail = (text.splitlines() or ["no output"])[-1]
        return DeviceError(f"{self.name}: {what}: {tail}; check the host, port, user and key (?identity=KEY)")

    def _ssh(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        """Run ``argv`` on the device: every argument quoted, so the remote shell sees exactly these words."""
        remote = " ".join(shlex.quote(a) for a in argv)
        cmd = ["ssh", *self._options("-p"), "--", self._target, remote]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceTimeout(
                f"{self.name}: '{argv[0]}' took longer than {timeout:.0f} s; lower iterations"
            ) from None
        if proc.returncode == 255:
            raise self._fail(f"ssh failed running {argv[0]}", proc.stderr)
        return proc

    def _copy(self, sources: list[Path], remote_dir: str) -> None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        dest = f"{self.user + '@' if self.user else ''}{host}:{remote_dir}/"
        cmd = ["scp", "-q", "-r", *self._options("-P"), "--", *map(str, sources), dest]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise self._fail("copying the artifacts failed", proc.stderr)

    def _mktemp(self) -> str:
        proc = self._ssh(["mktemp", "-d", "/tmp/edgekit-bench.XXXXXXXX"], self.timeout + 10)
        remote = proc.stdout.strip()
        if proc.returncode != 0 or not _SAFE_REMOTE_DIR.match(remote):
            raise DeviceError(f"{self.name}: cannot create a temporary directory (mktemp said: {proc.stderr.strip()})")
        return remote

    def bench(self, artifacts: list[ArtifactRef], opts: BenchOptions) -> list[dict[str, Any]]:
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeviceError(f"'{tool}' is not installed here; install the OpenSSH client (openssh-client)")
        remote = self._mktemp()
        try:
            with tempfile.TemporaryDirectory(prefix="edgekit-stage-") as tmp:
                # Artifacts of different targets share leaf names (onnx/fp32, openvino/fp32): stage each under a
                # unique name, as links (scp follows them) so nothing large is copied here.
                stage = Path(tmp)
                (stage / "runner").symlink_to(RUNNER_DIR, target_is_directory=True)
                for i, ref in enumerate(artifacts):
                    (stage / f"a{i}").symlink_to(ref.path.resolve(), target_is_directory=True)
                self._copy(sorted(stage.iterdir()), remote)
            return [self._run_one(remote, i, opts) for i in range(len(artifacts))]
        finally:
            self._ssh(["rm", "-rf", "--", remote], self.timeout + 30)

    def _run_one(self, remote: str, i: int, opts: BenchOptions) -> dict[str, Any]:
        argv = [self.python, f"{remote}/runner", f"{remote}/a{i}", *opts.runner_args()]
        try:
            proc = self._ssh(argv, opts.timeout_s)
        except DeviceTimeout as exc:  # this artifact only: the others (and those already measured) still count
            return outcome_of(exc)
        if proc.returncode == 127 and not proc.stdout.strip():
            raise DeviceError(
                f"{self.name}: no python at '{self.python}' on the device; install python3 there or point "
                "?python=/path/to/python3 at the one to use"
            )
        try:
            return {"result": read_runner_json(proc.stdout, proc.stderr, self.name, self.python)}
        except MissingOnDevice as exc:
            if exc.module == "numpy":  # the runner itself cannot start: no artifact can run on this device
                raise
            return outcome_of(exc)
        except DeviceError as exc:
            return outcome_of(exc)
