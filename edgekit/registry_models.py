"""In-process models for the Python API: ``edgekit.export(my_module, ...)`` registers the module under a
``edgekit.registry_models:get_N`` factory spec so the recipe machinery treats it like any factory."""

from __future__ import annotations

import itertools

import torch

_MODELS: dict[str, torch.nn.Module] = {}
_COUNTER = itertools.count()


def register_module(module: torch.nn.Module) -> str:
    key = f"m{next(_COUNTER)}"
    _MODELS[key] = module
    return f"{__name__}:get_{key}"


def __getattr__(name: str):
    if name.startswith("get_") and name[4:] in _MODELS:
        return lambda: _MODELS[name[4:]]
    raise AttributeError(name)
