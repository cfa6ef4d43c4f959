"""Exact rewrites of HF modules that a converter cannot read, applied after loading, per ``model_type``.

Each patch computes the same function with ops every target has (tests compare against the unpatched model),
and is listed in the report's model info (``patches``).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch

HF_PATCHES: dict[str, Callable[[torch.nn.Module], list[str]]] = {}


def apply_patches(model_type: str, model: torch.nn.Module) -> list[str]:
    patch = HF_PATCHES.get(model_type)
    return patch(model) if patch is not None else []


def _global_pool(model: torch.nn.Module) -> list[str]:
    """EfficientNet pools with ``AvgPool2d(hidden_dim, ceil_mode=True)``: a kernel larger than the feature map,
    i.e. a global average, that OpenVINO rejects (kernel > input). ``AdaptiveAvgPool2d(1)`` is the same mean."""
    done = []
    for name, module in list(model.named_modules()):
        pooler = getattr(module, "pooler", None)
        if isinstance(pooler, (torch.nn.AvgPool2d, torch.nn.MaxPool2d)) and pooler.ceil_mode:
            adaptive = (
                torch.nn.AdaptiveAvgPool2d if isinstance(pooler, torch.nn.AvgPool2d) else torch.nn.AdaptiveMaxPool2d
            )
            module.pooler = adaptive(1)
            done.append(f"{name or 'model'}.pooler: {type(pooler).__name__}(ceil_mode) -> {adaptive.__name__}(1)")
    return done


def _unfold(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    # F.unfold with kernel == stride: non-overlapping patches, [B, C, ph*pw, n_patches] as HF lays them out
    b, c, h, w = feature_map.shape
    ph, pw = self.patch_height, self.patch_width
    if h % ph or w % pw:  # unfold drops the remainder (and fold pads it back): keep the original there
        return type(self).unfolding(self, feature_map)
    x = feature_map.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c, ph * pw, (h // ph) * (w // pw)), (h, w)


def _fold(self, patches: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    b, c, _, _ = patches.shape
    h, w = output_size
    ph, pw = self.patch_height, self.patch_width
    if h % ph or w % pw:
        return type(self).folding(self, patches, output_size)
    x = patches.reshape(b, c, ph, pw, h // ph, w // pw).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c, h, w)


def _reshape_patches(model: torch.nn.Module) -> list[str]:
    """MobileViTV2 cuts feature maps into patches with ``F.unfold``/``F.fold`` (im2col/col2im: no ONNX opset
    17 op, no LiteRT or CoreML op). With kernel == stride that is a reshape and a transpose."""
    count = 0
    for module in model.modules():
        if hasattr(module, "unfolding") and hasattr(module, "folding") and hasattr(module, "patch_height"):
            module.unfolding = types.MethodType(_unfold, module)
            module.folding = types.MethodType(_fold, module)
            count += 1
    return [f"{count} unfold/fold patchings -> reshape + transpose"] if count else []


HF_PATCHES["efficientnet"] = _global_pool
HF_PATCHES["mobilevitv2"] = _reshape_patches
