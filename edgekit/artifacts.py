"""Durable run directories: write into a temp sibling, rename into place; never overwrite without force."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import OutputExistsError

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


class RunDir:
    """``with RunDir(out, force) as tmp:`` - on success ``tmp`` becomes ``out``; on error it is removed."""

    def __init__(self, out: Path, force: bool = False):
        self.out = Path(out)
        self.force = force
        if self.out.exists() and not force:
            raise OutputExistsError(
                f"output directory '{self.out}' already exists; pass --force to replace it or choose another --out"
            )
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{self.tmp.name[-8:]}")
            self.out.rename(old)
        self.tmp.rename(self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


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
    manifest.write_text(json.dumps(doc, indent=1, default=str))


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
    (root / "manifest.json").write_text(json.dumps(doc, indent=1, default=str))
