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


def regroup(kernel: torch.Tensor, groups: int, target_groups: int) -> torch.Tensor:
    """A grouped conv kernel (``groups``) as the equivalent kernel of a conv with ``target_groups`` groups
    (``target_groups`` divides ``groups``): block-diagonal, zeros where a source group does not read.

    ``kernel`` is (Cout, Cin / groups, k, k); the result is (Cout, Cin / target_groups, k, k)."""
    if groups == target_groups:
        return kernel
    if groups % target_groups:
        raise ValueError(f"cannot regroup a {groups}-group kernel into {target_groups} groups (must divide)")
    cout, cin_g, k, _ = kernel.shape
    cin, cout_g = cin_g * groups, cout // groups
    cin_t = cin // target_groups
    per_target = groups // target_groups
    out = kernel.new_zeros(cout, cin_t, k, k)
    for s in range(groups):
        offset = (s % per_target) * cin_g  # where source group s starts inside its target group's inputs
        out[s * cout_g : (s + 1) * cout_g, offset : offset + cin_g] = kernel[s * cout_g : (s + 1) * cout_g]
    return out
