"""Training checkpoints: model, optimizer, schedule, step and RNG state, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError

FILE = "last.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    tmp = path.with_suffix(".tmp")
    torch.save({**state, "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint
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
    state = torch.load(path, map_location="cpu", weights_only=False)
    torch.set_rng_state(state.pop("torch_rng"))
    return state
