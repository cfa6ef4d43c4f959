"""Durable run directories: write into a temp sibling, rename into place; never overwrite without force."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import IntegrityError, OutputError, OutputExistsError

PACKAGES = (
    "edgekit",
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "transformers",
    "coremltools",
    "ai-edge-litert",
    "litert-torch",
)


# The temporary sibling is ".NAME.tmp-" plus 8 random characters: NAME must leave room for them.
_TMP_EXTRA = len(".") + len(".tmp-") + 8


def output_problem(out: Path) -> str | None:
    """Why ``out`` cannot be an output path on this file system (a name too long for it), or None."""
    try:
        name_max = os.pathconf(out.parent if out.parent.exists() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in out.parts:
        if len(os.fsencode(part)) > name_max:
            return f"the name '{part[:40]}...' has {len(part)} characters; this file system allows {name_max}"
    if len(os.fsencode(out.name)) + _TMP_EXTRA > name_max:
        return f"its last name has {len(out.name)} characters; edgekit allows {name_max - _TMP_EXTRA} here"
    return None


def _check_output(out: Path, force: bool, kind: str) -> None:
    problem = output_problem(out)
    if problem:
        raise OutputError(f"output {kind} '{str(out)[:80]}...': {problem}; choose a shorter --out")
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(
            f"output {kind} '{out}' already exists; pass --force to replace it or choose another --out"
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class RunDir:
    """``with RunDir(out, force) as tmp:`` - on success ``tmp`` becomes ``out``; on error it is removed.

    The output policy of every command that writes a directory: never onto an existing path without ``force``;
    everything is written into a temporary sibling (mode from the umask, like any directory the user makes) that
    is renamed into place only when the whole command succeeded, so an error, Ctrl-C or SIGTERM leaves the old
    output (or nothing) and no partial files. ``update=True`` starts the temporary copy from the existing
    ``out`` (a folder that accumulates results, such as device benchmarks) and replaces it the same way.
    """

    def __init__(self, out: Path, force: bool = False, update: bool = False):
        self.out = Path(out)
        self.force = force
        self.update = update and self.out.is_dir() and not self.out.is_symlink()
        _check_output(self.out, force or self.update, "directory")
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        try:
            self.tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; a run directory is shared like any other
            if self.update:
                shutil.copytree(self.out, self.tmp, dirs_exist_ok=True, symlinks=True)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.tmp is None:
            return
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._swap(self.tmp)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _swap(self, tmp: Path) -> None:
        if self.out.is_symlink() or (self.out.exists() and not self.out.is_dir()):
            self.out.unlink()  # a file or a link in the way: nothing of it to keep, nothing left hidden
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{tmp.name[-8:]}")
            self.out.rename(old)
        try:
            tmp.rename(self.out)
        except BaseException:
            if old is not None:
                old.rename(self.out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_file(path: Path, data: str | bytes, force: bool = False) -> None:
    """Write one output file by the same policy as :class:`RunDir`: temp file + rename, never over an existing
    path without ``force``, nothing left behind on error; ``force`` onto a symlink replaces the link."""
    path = Path(path)
    _check_output(path, force, "file")
    if path.is_dir() and not path.is_symlink():
        raise OutputExistsError(f"output file '{path}' is a directory; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_to_manifest(root: Path, paths: list[Path]) -> None:
    """Record files added to a finished run directory in its manifest (hash only those; the build's versions and
    platform stay those of the machine that made the run). No manifest: nothing to update."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return
    doc = json.loads(manifest.read_text())
    files = doc.setdefault("files", {})
    for p in paths:
        files[str(p.relative_to(root))] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    doc["files"] = dict(sorted(files.items()))
    write_file(manifest, json.dumps(doc, indent=1, default=str), force=True)


def write_manifest(root: Path, content: dict[str, Any]) -> None:
    """manifest.json: the given content plus versions, platform and the sha256 of every other file."""
    files = {
        str(p.relative_to(root)): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    doc = {
        "format": "edgekit-manifest/1",
        **content,
        "versions": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(), "node": platform.node()},
        "files": files,
    }
    write_file(root / "manifest.json", json.dumps(doc, indent=1, default=str), force=True)


def verify_manifest(root: Path) -> int:
    """Check every file recorded in ``root/manifest.json`` against its sha256 and size; the number checked.

    Raises IntegrityError naming the first file that is missing or differs, so a tampered or damaged run is
    never re-validated (or re-recorded) as if it were the one that was built."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise IntegrityError(f"'{root}' has no manifest.json: it is not an edgekit run directory (or was damaged)")
    try:
        files = json.loads(manifest.read_text())["files"]
        items = [(str(rel), str(rec["sha256"]), int(rec["bytes"])) for rel, rec in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{manifest} is damaged (not an edgekit manifest); rebuild the run") from None
    resolved = root.resolve()
    for rel, digest, size in items:
        path = root / rel
        if not path.resolve().is_relative_to(resolved):
            raise IntegrityError(f"{manifest} names '{rel}', outside the run directory; rebuild the run")
        if not path.is_file():
            raise IntegrityError(f"{root}: '{rel}' is recorded in manifest.json but missing; rebuild the run")
        if path.stat().st_size != size or sha256(path) != digest:
            raise IntegrityError(
                f"{root}: '{rel}' does not match its sha256 in manifest.json (modified or damaged since the run); "
                "rebuild the run or restore the file"
            )
    return len(items)
