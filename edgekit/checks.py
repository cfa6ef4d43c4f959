"""Input checks at the edge: counts and numbers within sane bounds, data and weights finite.

Every check runs before any work (recipe and flag parsing, data and model loading), so bad input is one clear
error instead of a hang (``iterations: 1e29``), a MemoryError (1e14 samples), a silent default (``--threads 0``)
or NaN that quietly flows into every scale and artifact.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .errors import CalibrationError, ModelError

if TYPE_CHECKING:
    import torch

# The largest value edgekit accepts per count. Far above any real use; low enough that a typo fails at once
# instead of running for years or allocating petabytes.
LIMITS: dict[str, int] = {
    "iterations": 10_000_000,
    "warmup": 1_000_000,
    "threads": 1024,
    "samples": 1_000_000,
    "batch_size": 65_536,
    "batch": 65_536,
    "sequence": 65_536,
    "steps": 100_000_000,
    "checkpoint_every": 100_000_000,
    "max_length": 65_536,
    "max_layers": 100_000,
}


def count_problem(name: str, value: float | None, minimum: int = 1) -> str | None:
    """Why ``value`` is not a usable ``name`` count (an integer from ``minimum`` to its limit), or None."""
    if value is None:
        return None
    limit = LIMITS.get(name.rsplit(".", 1)[-1])
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return f"{name} must be a whole number, got {value!r}"
    if value < minimum:
        return f"{name} must be {'positive' if minimum == 1 else f'>= {minimum}'}, got {value}"
    if limit is not None and value > limit:
        return f"{name} must be at most {limit:,}, got {value:,}"
    return None


def require_counts(minimum: int = 1, **values: float | None) -> None:
    """Raise ValueError (the recipe schema names the key) for the first count out of range."""
    for name, value in values.items():
        problem = count_problem(name, value, minimum)
        if problem:
            raise ValueError(problem)


def require_finite_numbers(**values: float | None) -> None:
    """Raise ValueError for the first NaN or infinite number (strict JSON has neither)."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def cli_count(name: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type=`` for a count flag: a whole number from ``minimum`` to the count's limit."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        problem = count_problem(name, value, minimum)
        if problem:
            raise argparse.ArgumentTypeError(problem.removeprefix(f"{name} "))
        return value

    return parse


def _cli_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def cli_finite_float(text: str) -> float:
    """argparse type: a finite float (``nan``/``inf`` rejected, as argparse's ``float`` would accept them)."""
    value = _cli_float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def cli_positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = _cli_float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def first_nonfinite(arr: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or infinite element of a floating array, or None."""
    if not np.issubdtype(arr.dtype, np.floating):
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))


def require_finite_data(arrays: dict[str, np.ndarray], where: str) -> None:
    """Calibration and validation data must be finite: NaN would give every activation a meaningless range."""
    for name, arr in arrays.items():
        index = first_nonfinite(arr)
        if index is not None:
            raise CalibrationError(
                f"{where}: input '{name}' holds {arr[index]} at index {list(index)} "
                f"({int((~np.isfinite(arr)).sum())} non-finite values); clean the data (NaN/Inf are not inputs)"
            )


def require_finite_weights(module: torch.nn.Module, where: str) -> None:
    """Every parameter and buffer finite: NaN weights make every artifact NaN, and every comparison vacuous."""
    import torch

    tensors = [*module.named_parameters(), *module.named_buffers()]
    for name, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            count = int((~torch.isfinite(t)).sum())
            raise ModelError(
                f"{where}: weight '{name}' holds {count} NaN/Inf values; retrain or re-export the model "
                "(a diverged training writes such weights)"
            )
