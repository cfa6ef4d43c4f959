"""Accuracy sets shipped with artifacts: ``ARTIFACT/accuracy.npz`` holds the first N validation inputs (in the
artifact's declared dtypes), the FP32 PyTorch outputs on them (``reference``) and the labels when the run has
them. The runner executes it on the device after timing and reports cosine / agreement / top-1 in its JSON,
so a device that computes wrong numbers (a delegate bug, a bad fp16 kernel) shows up next to its latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DeviceError
from . import runner
from .transports.base import ArtifactRef


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


def write_run_sets(root: Path, refs: list[ArtifactRef], samples: int) -> int:
    """Give every artifact of a run directory the first ``samples`` validation samples and their FP32 outputs."""
    from ..rerun import validation_set

    if not (root / "report.json").is_file() or not (root / "reference.npz").is_file():
        raise DeviceError(
            f"--accuracy-samples needs a run directory (report.json + reference.npz); {root} is not one: "
            f"write ARTIFACT/{runner.ACCURACY_FILE} yourself (inputs, 'reference', optional 'labels')"
        )
    report = json.loads((root / "report.json").read_text())
    val = validation_set(report)
    with np.load(root / "reference.npz") as z:
        fp32 = z["fp32"]
    n = min(samples, len(val), len(fp32))
    inputs = {k: v[:n] for k, v in val.inputs.items()}
    labels = None if val.labels is None else val.labels[:n]
    written = [write_set(ref.path, inputs, fp32[:n], labels) for ref in refs]
    from ..artifacts import add_to_manifest

    add_to_manifest(root, written)
    return n
