"""FMViT-style hybrid (Tan et al., 2023): deploy-oriented blocks mixing local (high-frequency) convolution and
global (low-frequency) attention, small variant for 28x28 images.

What is taken from the paper, in edgekit's words (the paper's exact block layouts are not reproduced):

* **convolutional multi-group reparameterization (gMLP)**: :class:`MultiGroupRepConv` trains parallel conv-BN
  branches with *different group counts* (a k x k conv in ``groups`` groups, a depthwise k x k conv, a dense 1x1
  conv, the "linear" channel mixer) plus a BN identity; ``reparameterize`` turns them into ONE k x k conv (each
  branch re-expressed at the smallest common grouping, block-diagonal where a branch reads fewer channels);
* **lightweight multi-head self-attention**: queries from every token, keys and values from tokens spatially
  reduced by a strided depthwise conv (``sr_ratio``), so attention costs N x N / sr^2;
* **convolutional fusion**: the local and global features are concatenated and mixed by a 1x1 conv, then a
  1x1-conv FFN; every op is a conv, BN, matmul or softmax: what TensorRT and Core ML run fastest.

The stem and the downsampling layer are RepVGG-style ``RepConv`` blocks, also folded by ``reparameterize``.
Config keys: ``widths`` (two stages), ``depths``, ``heads``, ``groups``, ``sr_ratio``, ``mlp_ratio``,
``num_channels``, ``image_size``, ``num_labels``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..nn.fold import conv_from, fuse_bn, identity_kernel, pad_to, regroup
from .base import ARCHS, ArchFamily, ModelBundle
from .rep_blocks import ConvBN, RepConv
from .vit_blocks import Attention, check_config, image_bundle

DEFAULTS: dict[str, Any] = {
    "widths": [16, 32],
    "depths": [1, 2],
    "heads": 2,
    "groups": 4,
    "sr_ratio": 2,
    "mlp_ratio": 2.0,
    "num_channels": 1,
    "image_size": 28,
    "num_labels": 10,
}


class MultiGroupRepConv(nn.Module):
    """Sum of conv-BN branches ``(kernel, groups)`` and a BN identity; one k x k conv after ``reparameterize``."""

    def __init__(self, dim: int, groups: int, k: int = 3):
        super().__init__()
        if dim % groups:
            raise ModelError(f"fmvit: width {dim} is not a multiple of groups {groups}; change widths or groups")
        self.spec = [(k, groups), (k, dim), (1, 1)]  # grouped kxk, depthwise kxk, dense 1x1 ("linear")
        self.k, self.groups = k, math.gcd(*(g for _, g in self.spec))
        self.branches = nn.ModuleList(ConvBN(dim, dim, kk, groups=g) for kk, g in self.spec)
        self.skip: nn.BatchNorm2d | None = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        out = sum(b(x) for b in self.branches)
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused is not None:
            return
        weight, bias = 0, 0
        for (_, g), branch in zip(self.spec, self.branches, strict=True):
            w, b = branch.fused(self.k)
            weight, bias = weight + regroup(w, g, self.groups), bias + b
        if self.skip is not None:
            dim = self.skip.num_features
            w, b = fuse_bn(identity_kernel(dim, self.groups, self.k, self.skip.running_mean), None, self.skip)
            weight, bias = weight + w, bias + b
        self.fused = conv_from(pad_to(weight, self.k), bias, 1, self.groups)
        self.branches, self.skip = nn.ModuleList(), None


class ConvFFN(nn.Sequential):
    def __init__(self, dim: int, ratio: float):
        super().__init__(nn.Conv2d(dim, int(dim * ratio), 1), nn.GELU(), nn.Conv2d(int(dim * ratio), dim, 1))


class LightAttention(nn.Module):
    """Attention over the feature map's tokens with keys/values from a strided depthwise reduction."""

    def __init__(self, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.reduce = (
            nn.Sequential(nn.Conv2d(dim, dim, sr_ratio, sr_ratio, groups=dim), nn.BatchNorm2d(dim))
            if sr_ratio > 1
            else None
        )
        self.attn = Attention(dim, heads, keys="reduced" if sr_ratio > 1 else "self")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = self.norm(x)
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        context = None if self.reduce is None else self.reduce(x).flatten(2).transpose(1, 2)
        return self.attn(tokens, context=context).transpose(1, 2).reshape(b, c, h, w)


class FMViTBlock(nn.Module):
    """``x + fuse([local(x), global(x)])``, then ``x + ffn(x)``; ``global`` is None in the conv-only stage."""

    def __init__(self, dim: int, cfg: dict[str, Any], attention: bool):
        super().__init__()
        self.local = MultiGroupRepConv(dim, cfg["groups"])
        self.glob = LightAttention(dim, cfg["heads"], cfg["sr_ratio"]) if attention else None
        self.fuse = nn.Conv2d(dim * (2 if attention else 1), dim, 1)
        self.ffn_norm = nn.BatchNorm2d(dim)
        self.ffn = ConvFFN(dim, cfg["mlp_ratio"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.local(x) if self.glob is None else torch.cat([self.local(x), self.glob(x)], dim=1)
        x = x + self.fuse(mixed)
        return x + self.ffn(self.ffn_norm(x))


class FMViT(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        widths, depths = cfg["widths"], cfg["depths"]
        if len(widths) != 2 or len(depths) != 2:
            raise ModelError(f"'fmvit': widths and depths need two values (conv stage, attention stage), got {cfg}")
        if cfg["sr_ratio"] < 1:
            raise ModelError(f"'fmvit': sr_ratio must be >= 1, got {cfg['sr_ratio']}")
        layers: list[nn.Module] = [RepConv(cfg["num_channels"], widths[0], 3, stride=2)]
        layers += [FMViTBlock(widths[0], cfg, attention=False) for _ in range(depths[0])]
        layers.append(RepConv(widths[0], widths[1], 3, stride=2))
        layers += [FMViTBlock(widths[1], cfg, attention=True) for _ in range(depths[1])]
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(widths[1])
        self.head = nn.Linear(widths[1], cfg["num_labels"])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.features(pixel_values)).mean((2, 3)))


def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    return image_bundle("fmvit", FMViT, check_config("fmvit", overrides, DEFAULTS, task))


ARCHS.add(
    "fmvit",
    ArchFamily("fmvit", build, "FMViT-style hybrid: multi-group reparameterized convs + lightweight attention"),
)
