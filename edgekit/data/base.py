"""Data sets as arrays keyed by the model's input names, plus optional labels.

Every source is registered under the name used in recipes (``DataSpec.source``). A source returns the
whole (sampled) set in memory: edgekit's calibration and validation sets are small by design.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..checks import require_finite_data
from ..errors import CalibrationError, InputSpecError
from ..recipe import DataSpec
from ..registry import Registry

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


@dataclass
class DataSet:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    description: str

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        for start in range(0, len(self), batch_size):
            sl = slice(start, start + batch_size)
            yield ({k: v[sl] for k, v in self.inputs.items()}, None if self.labels is None else self.labels[sl])

    def subset(self, n: int, seed: int = 0) -> DataSet:
        """``n`` samples drawn by a seeded permutation (class-balanced in expectation)."""
        if n >= len(self):
            return self
        idx = sample_indices(len(self), n, seed)
        return DataSet(
            {k: v[idx] for k, v in self.inputs.items()},
            None if self.labels is None else self.labels[idx],
            self.description,
        )


def sample_indices(total: int, n: int | None, seed: int) -> np.ndarray:
    """The sorted indices of a seeded sample; sources call it before expensive conversions (resizing)."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def fixed_split(total: int, part: str) -> np.ndarray:
    """Indices of the ``train`` (80%) or ``test`` (20%) part of a fixed, seeded split, for sets that ship as one
    file: calibration and validation drawn from them never overlap."""
    order = np.random.default_rng(1234).permutation(total)
    cut = int(0.8 * total)
    return order[:cut] if part == "train" else order[cut:]


Source = Callable[[DataSpec, ModelBundle], DataSet]
DATA: Registry[Source] = Registry("data source")


def data_dir() -> Path:
    """Where fetched data sets live: $EDGEKIT_DATA, else ~/.cache/edgekit."""
    return Path(os.environ.get("EDGEKIT_DATA", Path.home() / ".cache" / "edgekit"))


def np_dtype(name: str) -> type:
    return _NP_DTYPES[name]


def load_data(spec: DataSpec, bundle: ModelBundle, purpose: str = "data") -> DataSet:
    """Load, sample and check a data set against the model's input spec."""
    from . import arrays, folder, images, photos, text, text_lm  # noqa: F401  (register the sources)

    ds = DATA.get(spec.source)(spec, bundle)
    if spec.samples is not None:
        ds = ds.subset(spec.samples, spec.seed)
    if len(ds) == 0:
        raise CalibrationError(f"{purpose} data '{ds.description}' is empty; point it at a non-empty set")
    check_inputs(ds.inputs, bundle, f"{purpose} data '{spec.source}'")
    require_finite_data(ds.inputs, f"{purpose} data '{ds.description}'")
    return ds


def check_inputs(inputs: dict[str, np.ndarray], bundle: ModelBundle, where: str) -> None:
    """Names, ranks, static dimensions and dtypes must match the model's IO spec."""
    expected = {s.name: s for s in bundle.inputs}
    if set(inputs) != set(expected):
        raise InputSpecError(f"{where} provides inputs {sorted(inputs)} but the model expects {sorted(expected)}")
    for name, arr in inputs.items():
        spec = expected[name]
        ok_rank = arr.ndim == len(spec.shape)
        ok_dims = ok_rank and all(isinstance(d, str) or d == n for d, n in zip(spec.shape, arr.shape))
        if not ok_dims:
            raise InputSpecError(
                f"{where}: input '{name}' has shape {list(arr.shape)} but the model expects {list(spec.shape)}"
            )
        if arr.dtype != np_dtype(spec.dtype):
            raise InputSpecError(f"{where}: input '{name}' has dtype {arr.dtype} but the model expects {spec.dtype}")
