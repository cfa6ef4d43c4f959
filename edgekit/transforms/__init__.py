"""Model transforms: every transform is ``fn(model, options) -> TransformResult`` and is registered by name.

Recipes list them under ``transforms:``. A transform declares its *phase*: ``train`` transforms change the
architecture before the training stage (e.g. swapping LayerNorm for Unified Normalization), ``deploy`` ones
fold or rewrite the trained model for inference. *Exact* transforms must not change FP32 outputs: the pipeline
checks each one on real inputs and records the difference in the report.

Each transform declares a frozen dataclass of typed options (:class:`NoOptions` when it takes none). A recipe's
``options:`` mapping is parsed into it with :func:`edgekit.config.from_dict` when the recipe is checked
(:func:`check_transform`, before any training), so an unknown or wrongly typed option fails at load with a
one-line RecipeError naming the transform and the key. The function receives the parsed object and returns
the model with what it changed (the report's ``changed``) as a :class:`TransformResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import NoOptions as NoOptions  # re-exported: the transforms that take no options use it
from ..config import from_dict
from ..registry import Registry


@dataclass(frozen=True)
class TransformResult:
    """A transform's output: the (possibly new) model and what changed, recorded in the report."""

    model: torch.nn.Module
    info: dict[str, Any] = field(default_factory=dict)


TransformFn = Callable[[torch.nn.Module, Any], TransformResult]  # (model, options dataclass instance)


@dataclass(frozen=True)
class TransformDef:
    name: str
    fn: TransformFn
    phase: str  # "train" (before the training stage) | "deploy" (after it)
    exact: bool
    description: str
    options: type = NoOptions  # a frozen dataclass; its defaults are the transform's defaults

    def parse(self, options: Mapping[str, Any] | Any | None = None) -> Any:
        """The typed options from a recipe's mapping (an instance of ``self.options`` passes through)."""
        value = dict(options) if isinstance(options, Mapping) else ({} if options is None else options)
        return from_dict(self.options, value, f"transform {self.name}: options")

    def apply(self, model: torch.nn.Module, options: Mapping[str, Any] | Any | None = None) -> TransformResult:
        """Parse ``options`` and run the transform on ``model``."""
        return self.fn(model, self.parse(options))


TRANSFORMS: Registry[TransformDef] = Registry("transform")


def register(
    name: str, phase: str, exact: bool, description: str, options: type = NoOptions
) -> Callable[[TransformFn], TransformFn]:
    def deco(fn: TransformFn) -> TransformFn:
        TRANSFORMS.add(name, TransformDef(name, fn, phase, exact, description, options))
        return fn

    return deco


def get_transform(name: str) -> TransformDef:
    from . import attention, binary_attention, binary_weights, reparam, sigma_reparam, unified_norm  # noqa: F401

    return TRANSFORMS.get(name)


def check_transform(name: str, options: Mapping[str, Any]) -> TransformDef:
    """The transform ``name`` with ``options`` parsed into its typed options (at recipe load, before training):
    an unknown transform, an unknown option or a wrongly typed or out-of-range value raises RecipeError."""
    t = get_transform(name)
    t.parse(options)
    return t
