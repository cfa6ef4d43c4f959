"""The arithmetic of folding: Conv/BN fusion, 1x1 -> kxk padding, identity kernels (SEED-METHODS section 1)."""

from __future__ import annotations

import torch
from torch import nn


def fuse_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """W' = W * g / sqrt(var + eps) per output channel; b' = beta + (b - mean) * g / sqrt(var + eps)."""
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    b = bias if bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), beta + (b - bn.running_mean) * scale


def pad_to(kernel: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad a (smaller, odd) kernel to k x k, centred."""
    p = (k - kernel.shape[-1]) // 2
    return nn.functional.pad(kernel, [p, p, p, p]) if p else kernel


def identity_kernel(channels: int, groups: int, k: int, like: torch.Tensor) -> torch.Tensor:
    """A k x k conv kernel that copies its input: k[i, i % (C / groups), k//2, k//2] = 1."""
    per_group = channels // groups
    w = torch.zeros(channels, per_group, k, k, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels)
    w[idx, idx % per_group, k // 2, k // 2] = 1.0
    return w


def conv_from(weight: torch.Tensor, bias: torch.Tensor, stride: int, groups: int) -> nn.Conv2d:
    """A biased, 'same'-padded Conv2d holding the given (fused) parameters."""
    cout, cin_per_group, k, _ = weight.shape
    conv = nn.Conv2d(cin_per_group * groups, cout, k, stride, k // 2, groups=groups, bias=True)
    conv.weight.data.copy_(weight.detach())
    conv.bias.data.copy_(bias.detach())
    return conv
