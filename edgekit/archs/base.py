"""What an architecture family provides: how to build a model, its inputs, task and tolerances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..recipe import TensorSpec
from ..registry import Registry


@dataclass
class ModelBundle:
    """A model ready for edgekit: ``module(*inputs)`` returns one tensor (logits or an embedding)."""

    module: torch.nn.Module
    inputs: tuple[TensorSpec, ...]
    family: str
    task: str  # "classification" | "embedding" | "next-token"
    output_name: str = "output"
    is_transformer: bool = True
    tokenizer_dir: str | None = None  # for text data sources
    image_processor_dir: str | None = None  # a checkpoint with preprocessor_config.json, for the images source
    label2id: dict[str, int] | None = None  # the model's class names, for data labelled by class name
    info: dict[str, Any] = field(default_factory=dict)  # shown in the manifest (config, parameter count)

    @property
    def num_parameters(self) -> int:
        return count_params(self.module)

    def example_inputs(self, batch: int, sequence: int) -> tuple[torch.Tensor, ...]:
        """Synthetic inputs with the declared shapes and dtypes (for tracing and conversion, not accuracy)."""
        out = []
        for s in self.inputs:
            shape, dtype = s.concrete_shape(batch=batch, sequence=sequence), getattr(torch, s.dtype)
            if s.dtype.startswith("float"):
                out.append(torch.randn(shape, dtype=dtype))
            elif s.name == "attention_mask":
                out.append(torch.ones(shape, dtype=dtype))
            else:
                out.append(torch.randint(0, 100, shape, dtype=dtype))
        return tuple(out)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class ArchFamily:
    name: str
    build: Callable[[dict[str, Any], str | None], ModelBundle]  # (config overrides, task) -> bundle
    description: str
    load: Callable[[str, str | None], ModelBundle] | None = None  # (checkpoint dir, task) -> bundle
    # the tasks ``load`` serves: a checkpoint of this model_type asked for another task (``--task``) is loaded
    # by the generic HF intake (hf_auto) instead
    tasks: tuple[str, ...] = ()


ARCHS: Registry[ArchFamily] = Registry("architecture")
