"""The Core ML session: prediction on macOS, or a given predict function elsewhere (edgekit's reference
interpreter), in chunks of the batch sizes the program allows."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from .common import _import, np


class CoreMLSession:
    """Core ML prediction (macOS only: coremltools on Linux converts models but cannot execute them).

    edgekit's Core ML programs declare int64 ids as int32 (feeds are cast); a batch larger than the program takes
    runs in chunks of an allowed batch size, the last chunk padded up to one and cut back. ``batches``: the allowed
    sizes (default: the program's declared batch; edgekit passes a flexible program's sizes). ``predict``: one
    chunk's prediction instead of Core ML's (edgekit passes its reference interpreter off macOS)."""

    runtime = "coreml"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict, batches=None, predict=None):
        self.output = meta.get("output")
        if predict is not None:
            self._predict = predict
            self.batches = tuple(batches or (1,))
            self.version = "edgekit reference interpreter"
            self.settings = {"output": self.output, "batches": list(self.batches)}
            return
        if sys.platform != "darwin":
            raise RuntimeError(
                f"Core ML prediction needs macOS (this is {platform.system()}): run the runner on a Mac; "
                "on Linux edgekit validates Core ML programs with its reference interpreter instead"
            )
        ct = _import("coremltools", "pip install coremltools")
        units = meta.get("options", {}).get("compute_units", "ALL")
        self.model = ct.models.MLModel(str(path / meta["file"]), compute_units=ct.ComputeUnit[units])
        description = self.model.get_spec().description
        outputs = [o.name for o in description.output]
        self.output = self.output if self.output in outputs else outputs[0]
        shape = list(description.input[0].type.multiArrayType.shape)
        self.batches = tuple(batches or (int(shape[0]) if shape else 1,))
        self._predict = lambda feeds: self.model.predict(feeds)[self.output]
        self.version = ct.__version__
        self.settings = {"compute_units": units, "output": self.output}

    def run(self, feeds: dict):
        total = len(next(iter(feeds.values())))
        casted = {k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in feeds.items()}
        outs, start = [], 0
        while start < total:
            left = total - start
            fits = [b for b in self.batches if b <= left]
            size = max(fits) if fits else min(self.batches)  # pad the last chunk up to an allowed batch
            chunk = {k: v[start : start + size] for k, v in casted.items()}
            if size > left:
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], size - left, axis=0)]) for k, v in chunk.items()}
            outs.append(np.asarray(self._predict(chunk), np.float32)[: min(size, left)])
            start += size
        return np.concatenate(outs)
