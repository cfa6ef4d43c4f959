"""1-bit weights: ``W ~ alpha * sign(W)`` per output channel, retrained with a straight-through estimator.

``alpha_c = mean |W_c|`` is the scale that minimizes ``||W_c - alpha_c sign(W_c)||^2`` (XNOR-Net). The layer
computes ``(x @ B^T) * alpha + bias`` with ``B`` in {-1, +1}: the matrix product has a +-1 operand, so its
multiply-accumulates are accumulations, and the exported graph holds a pure +-1 weight tensor that targets with
a 1-bit format store as one bit per weight (each target's ``Target.lower_binary``): CoreML as a 1-bit palette
(lookup table {-1, +1}), OpenVINO as a u1 constant read through a FakeQuantize with ``levels=2``. Other targets
keep the +-1 tensor in float (simulated: the same numbers, no size gain); the report says which per target.

Training keeps a float latent weight: forward with ``sign``, backward straight through where ``|W| <= 1``
(and through ``alpha``). By default the Linear layers inside transformer blocks are binarized; the patch
embedding, convolutions and the classifier stay float, as is usual for binary networks.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UnsupportedOpError
from ..nn.scopes import child_slots
from . import TransformResult, register
from .binary_hash import binarize

DEFAULT_EXCLUDE = ("*classifier*", "*embeddings*", "*patch_embed*", "*head")


class BinaryLinear(nn.Module):
    """A Linear layer with 1-bit weights (per-channel scale). Not an ``nn.Linear`` on purpose: INT8 wrapping
    must not re-quantize the latent float weight.

    Training computes signs and scales from the latent weight (STE). Inference reads them from buffers that are
    refreshed whenever the layer enters eval mode or loads a state dict, so an exported graph holds the +-1
    tensor and the scales as constants, not the latent weight and the ops that binarize it.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone())  # latent float weight
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.register_buffer("signs_frozen", torch.empty_like(self.weight), persistent=False)
        self.register_buffer("scale_frozen", torch.empty(self.out_features), persistent=False)
        self.register_load_state_dict_post_hook(_refreeze)
        self.freeze()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits=1"

    @torch.no_grad()
    def freeze(self) -> None:
        self.signs_frozen.copy_(binarize(self.weight))
        self.scale_frozen.copy_(self.weight.abs().mean(1))

    def train(self, mode: bool = True) -> BinaryLinear:
        super().train(mode)
        if not mode:
            self.freeze()
        return self

    def signs_and_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            return binarize(self.weight), self.weight.abs().mean(1)
        return self.signs_frozen, self.scale_frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signs, scale = self.signs_and_scale()
        y = F.linear(x, signs) * scale
        return y if self.bias is None else y + self.bias

    def dequantized_weight(self) -> torch.Tensor:
        signs, scale = self.signs_and_scale()
        return signs * scale.unsqueeze(1)


def _refreeze(module: nn.Module, incompatible_keys: object) -> None:
    """Load-state-dict post-hook (module level, so deep copies hook their own layer)."""
    module.freeze()


def binary_layers(model: nn.Module) -> dict[str, BinaryLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, BinaryLinear)}


def _selected(name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in include) and not any(fnmatch.fnmatchcase(name, p) for p in exclude)


@dataclass(frozen=True)
class BinaryWeightsOptions:
    """Module-name globs: the ``nn.Linear`` layers matching ``include`` and none of ``exclude`` are binarized."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    def __post_init__(self) -> None:
        if not self.include:
            raise ValueError("include must name at least one module glob (default ['*'])")


@register(
    "binary_weights",
    "train",
    exact=False,
    description="1-bit weights (per-channel scale x sign, STE)",
    options=BinaryWeightsOptions,
)
def binary_weights(model: nn.Module, options: BinaryWeightsOptions) -> TransformResult:
    include, exclude = options.include, options.exclude
    swapped: list[str] = []
    for parent, child_name, full, child in child_slots(model):
        if type(child) is nn.Linear and _selected(full, include, exclude):
            setattr(parent, child_name, BinaryLinear(child))
            swapped.append(full)
    if not swapped:
        raise UnsupportedOpError(
            f"binary_weights: no nn.Linear layer of {type(model).__name__} matches include {list(include)} "
            f"minus exclude {list(exclude)}; adjust the globs"
        )
    weights = sum(model.get_submodule(n).weight.numel() for n in swapped)
    return TransformResult(model, {"binary_layers": len(swapped), "binary_weights": weights})
