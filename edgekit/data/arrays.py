"""Array sources: seeded random inputs from the IO spec, and user-provided .npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError
from ..recipe import DataSpec
from .base import DATA, DataSet, np_dtype


@DATA.register("random")
def random_inputs(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    """Gaussian floats / small integer ids with the declared shapes; for tests and latency only."""
    rng = np.random.default_rng(spec.seed)
    n = spec.samples or 64
    dims = {"sequence": spec.max_length}
    high = min(1000, int(bundle.info.get("vocab_size") or 1000))  # token ids must index the embedding table
    inputs = {}
    for s in bundle.inputs:
        shape = s.concrete_shape(batch=n, **dims)
        if s.dtype.startswith("float"):
            inputs[s.name] = rng.standard_normal(shape).astype(np_dtype(s.dtype))
        elif s.name == "attention_mask":
            inputs[s.name] = np.ones(shape, dtype=np_dtype(s.dtype))
        else:
            inputs[s.name] = rng.integers(0, high, size=shape).astype(np_dtype(s.dtype))
    return DataSet(inputs, None, f"random ({n} samples)")


@DATA.register("npz")
def npz_file(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    """An .npz holding one array per model input (by name) and optionally ``labels``."""
    if not spec.path:
        raise CalibrationError("npz data needs a path (e.g. --calib calib.npz)")
    path = Path(spec.path)
    if not path.is_file():
        raise CalibrationError(f"calibration file '{path}' does not exist")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"'{path}' is not a readable .npz file: {exc}") from None
    labels = arrays.pop("labels", None)
    if not arrays:
        raise CalibrationError(
            f"'{path}' holds no input arrays; name them after the model's inputs "
            f"({', '.join(s.name for s in bundle.inputs)})"
        )
    counts = {k: len(v) for k, v in arrays.items()}
    if len(set(counts.values())) != 1 or (labels is not None and len(labels) != next(iter(counts.values()))):
        raise CalibrationError(f"'{path}': arrays have different sample counts {counts}")
    return DataSet(arrays, labels, f"npz {path.name}")
