"""A real device for the transport tests: an OpenSSH server on loopback and separate Python environments.

``ssh_server`` installs the OpenSSH server when it is missing (root + apt-get, as on CI), then starts
``sshd -D`` from a temporary config on a free loopback port with a temporary host key; login is by a
temporary user key only (root login: key only, passwords off), and it writes the known_hosts line the
client checks the host key against. ``device_python`` makes a venv (no pip, no downloads: seconds) that
sees this project's packages, only numpy, or nothing, to play a device with or without the runtimes.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def device_python(folder: Path, packages: str) -> Path:
    """A venv in ``folder`` whose interpreter sees: "all" of this project's site-packages, "numpy" only, or
    "none" (a bare interpreter). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    if packages == "all":
        (site / "project.pth").write_text(f"{SITE_PACKAGES}\n")
    elif packages == "numpy":
        only = folder / "numpy-only"
        only.mkdir()
        for name in ("numpy", "numpy.libs"):
            if (SITE_PACKAGES / name).exists():
                (only / name).symlink_to(SITE_PACKAGES / name)
        (site / "numpy-only.pth").write_text(f"{only}\n")
    return python


def _install_sshd() -> str | None:
    """Why sshd cannot be had here, or None once it is installed."""
    if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "no OpenSSH server here, and installing one needs root and apt-get: apt-get install openssh-server"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"apt-get install openssh-server failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    port: int
    user: str
    key: Path
    known_hosts: Path

    def spec(self, python: Path, known_hosts: Path | None = None) -> str:
        q = f"python={quote(str(python))}&identity={quote(str(self.key))}"
        return f"ssh://{self.user}@127.0.0.1:{self.port}?{q}&known_hosts={quote(str(known_hosts or self.known_hosts))}"


@contextlib.contextmanager
def ssh_server(folder: Path) -> Iterator[SshServer | str]:
    """Yields a running server, or the reason none can run here (for pytest.skip)."""
    why = _install_sshd()
    if why:
        yield why
        return
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"  # sshd re-executes itself: it needs its absolute path
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
    check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        yield f"sshd rejects the test config: {check.stderr.strip()}"
        return
    known_hosts = folder / "known_hosts"
    host_key = (folder / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 15
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            yield f"sshd exited: {proc.stderr.read().strip()}"
            return
        yield SshServer(port, getpass.getuser(), folder / "user_key", known_hosts)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
