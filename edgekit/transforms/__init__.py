"""Model transforms: every transform is ``apply(model, options) -> model`` and is registered by name.

Recipes list them under ``transforms:``. A transform declares its *phase*: ``train`` transforms change the
architecture before the training stage (e.g. swapping LayerNorm for Unified Normalization), ``deploy`` ones
fold or rewrite the trained model for inference. *Exact* transforms must not change FP32 outputs: the pipeline
checks each one on real inputs and records the difference in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import RecipeError, did_you_mean
from ..registry import Registry

TransformFn = Callable[[torch.nn.Module, dict[str, Any]], torch.nn.Module]


@dataclass(frozen=True)
class TransformDef:
    fn: TransformFn
    phase: str  # "train" (before the training stage) | "deploy" (after it)
    exact: bool
    description: str
    options: frozenset[str] | None = None  # when declared, unknown options fail at recipe load, before training


TRANSFORMS: Registry[TransformDef] = Registry("transform")


def register(
    name: str, phase: str, exact: bool, description: str, options: frozenset[str] | None = None
) -> Callable[[TransformFn], TransformFn]:
    def deco(fn: TransformFn) -> TransformFn:
        TRANSFORMS.add(name, TransformDef(fn, phase, exact, description, options))
        return fn

    return deco


def get_transform(name: str) -> TransformDef:
    from . import attention, binary_attention, binary_weights, reparam, sigma_reparam, unified_norm  # noqa: F401

    return TRANSFORMS.get(name)


def check_transform(name: str, options: dict[str, Any]) -> TransformDef:
    """The transform ``name``, its options checked when it declares them (at recipe load, before training)."""
    t = get_transform(name)
    if t.options is not None:
        check_options(options, set(t.options), name)
    return t


def check_options(options: dict[str, Any], allowed: set[str], transform: str) -> None:
    """Reject an option the transform does not know, with a suggestion."""
    for key in options:
        if key not in allowed:
            raise RecipeError(
                f"transform {transform}: unknown option '{key}'{did_you_mean(key, allowed)}; allowed: {sorted(allowed)}"
            )
