"""Training checkpoints: model, optimizer, schedule, step and RNG state, written atomically.

A checkpoint holds only what ``torch.load(..., weights_only=True)`` accepts (tensors, numbers, strings, and
lists/tuples/dicts of them): NumPy arrays are stored as tensors and turned back on load. Loading it therefore
never runs code, whoever wrote the file (``edgekit run --resume`` reads ``OUT.ckpt/last.pt``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError

FILE = "last.pt"
_ARRAYS = "numpy_arrays"  # keys whose value was a NumPy array when saved


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    tmp = path.with_suffix(".tmp")
    arrays = sorted(k for k, v in state.items() if isinstance(v, np.ndarray))
    plain = {k: torch.from_numpy(np.ascontiguousarray(v)) if k in arrays else v for k, v in state.items()}
    try:
        torch.save({**plain, _ARRAYS: arrays, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, path)  # never a half-written checkpoint
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_checkpoint(directory: Path) -> None:
    """Delete the checkpoint of a finished training (and its folder, when nothing else is in it)."""
    path = directory / FILE
    if path.exists():
        path.unlink()
        if not any(directory.iterdir()):
            directory.rmdir()


def load_checkpoint(directory: Path) -> dict[str, Any]:
    path = directory / FILE
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        torch.set_rng_state(state.pop("torch_rng"))
        for key in state.pop(_ARRAYS):
            state[key] = state[key].numpy()
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, AttributeError, TypeError) as exc:
        raise ModelError(
            f"checkpoint {path} is not an edgekit training checkpoint (it holds more than tensors and numbers, "
            f"or is damaged: {type(exc).__name__}); delete {directory} and start without --resume"
        ) from None
    return state
