"""What every part of the runner shares: the result schema, the missing-runtime error, runtime imports, input
dtypes and the artifact's ``artifact.json``. numpy may be missing on a device: ``np`` is then None and the CLI
reports it as a JSON error."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

try:
    import numpy as np
except ImportError:  # reported as a JSON error by main(); importers inside edgekit always have numpy
    np = None  # type: ignore[assignment]

SCHEMA = "edgekit-bench/1"
TOOL = "edgekit-runner"
ACCURACY_FILE = "accuracy.npz"
# The runtime that runs an artifact on its real device when it differs from the one that validates it here:
# a tensorrt artifact is validated as its Q/DQ ONNX in ONNX Runtime, but on a GPU it is a TensorRT engine.
NATIVE_RUNTIME = {"tensorrt": "tensorrt"}


class MissingRuntime(ImportError):
    """A Python module the artifact's runtime needs is not installed on this machine."""

    def __init__(self, module: str, pip: str):
        super().__init__(f"No module named '{module}'")
        self.module, self.pip = module, pip


def _import(module: str, pip: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingRuntime(module.split(".")[0], pip) from None


def _dtype(name: str):
    return {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}[name]


def _looped(one, feeds: dict, fixed: int):
    """Run a static-batch model over a larger batch, ``fixed`` samples at a time."""
    batch = len(next(iter(feeds.values())))
    if batch == fixed:
        return one(feeds)
    return np.concatenate([one({k: v[i : i + fixed] for k, v in feeds.items()}) for i in range(0, batch, fixed)])


def _type_name(value: object) -> str:
    """OpenVINO returns element types as objects; report them as 'f32', 'bf16', ..."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


class _native_stderr_silenced:
    """Point file descriptor 2 at /dev/null for a block: native libraries write there past Python's sys.stderr."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def read_meta(path: Path) -> dict:
    meta_file = Path(path) / "artifact.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not an edgekit artifact directory (no artifact.json)")
    return json.loads(meta_file.read_text())
