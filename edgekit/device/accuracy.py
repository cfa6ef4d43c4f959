"""Accuracy sets shipped with artifacts: ``ARTIFACT/accuracy.npz`` holds the first N validation inputs (in the
artifact's declared dtypes), the FP32 PyTorch outputs on them (``reference``) and the labels when the run has
them. The runner executes it on the device after timing and reports cosine / agreement / top-1 in its JSON,
so a device that computes wrong numbers (a delegate bug, a bad fp16 kernel) shows up next to its latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DeviceError
from . import runner


def write_set(
    artifact_dir: Path, inputs: dict[str, np.ndarray], reference: np.ndarray, labels: np.ndarray | None = None
) -> Path:
    """Write ``accuracy.npz`` for one artifact, inputs cast to the dtypes its artifact.json declares."""
    meta = runner.read_meta(artifact_dir)
    arrays = {}
    for spec in meta["inputs"]:
        if spec["name"] not in inputs:
            raise DeviceError(f"accuracy set for {artifact_dir}: no array for input '{spec['name']}'")
        arrays[spec["name"]] = np.asarray(inputs[spec["name"]]).astype(runner._dtype(spec["dtype"]))
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    path = artifact_dir / runner.ACCURACY_FILE
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, reference=np.asarray(reference, dtype=np.float32), **arrays)
    tmp.replace(path)
    return path
