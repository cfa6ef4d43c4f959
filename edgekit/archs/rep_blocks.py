"""Train-time multi-branch blocks and their single-op inference form (RepVGG, MobileOne, FastViT).

Every block here has ``reparameterize()``, which replaces its branches by one convolution in place; the
``reparameterize`` transform calls it on every such block. FP32 outputs are unchanged (to ~1e-6).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.fold import conv_from, fuse_bn, identity_kernel, pad_to


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def fused(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = fuse_bn(self.conv.weight, self.conv.bias, self.bn)
        return pad_to(w, k), b


class RepConv(nn.Module):
    """Sum of ``n_kxk`` kxk conv-BN branches, an optional 1x1 conv-BN ("scale") branch and an optional BN-only
    skip (when shapes allow), then an activation. RepVGG: n_kxk=1, k=3. MobileOne: n_kxk=k branches."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        stride: int = 1,
        groups: int = 1,
        n_kxk: int = 1,
        scale_branch: bool = True,
        skip: bool = True,
        act: bool = True,
    ):
        super().__init__()
        self.k, self.stride, self.groups = k, stride, groups
        self.branches = nn.ModuleList([ConvBN(cin, cout, k, stride, groups) for _ in range(n_kxk)])
        self.scale = ConvBN(cin, cout, 1, stride, groups) if scale_branch and k > 1 else None
        self.skip = nn.BatchNorm2d(cout) if skip and cin == cout and stride == 1 else None
        self.act = nn.ReLU() if act else nn.Identity()
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        out = sum(b(x) for b in self.branches)
        if self.scale is not None:
            out = out + self.scale(x)
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(out)

    def fused_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [b.fused(self.k) for b in self.branches]
        if self.scale is not None:
            parts.append(self.scale.fused(self.k))
        if self.skip is not None:
            eye = identity_kernel(self.skip.num_features, self.groups, self.k, self.skip.running_mean)
            parts.append(fuse_bn(eye, None, self.skip))
        return sum(w for w, _ in parts), sum(b for _, b in parts)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused is not None:
            return
        w, b = self.fused_params()
        self.fused = conv_from(w, b, self.stride, self.groups)
        self.branches, self.scale, self.skip = nn.ModuleList(), None, None


class RepMixer(nn.Module):
    """FastViT token mixer: train ``x + lam * (mixer(x) - norm(x))`` with depthwise MobileOne-style blocks;
    inference is ONE depthwise conv with W = I + lam * (W_mix - W_norm), b = lam * (b_mix - b_norm)."""

    def __init__(self, dim: int, k: int = 3, layer_scale: float = 1e-5):
        super().__init__()
        self.norm = RepConv(dim, dim, k, groups=dim, n_kxk=0, scale_branch=False, skip=True, act=False)
        self.mixer = RepConv(dim, dim, k, groups=dim, n_kxk=1, scale_branch=True, skip=True, act=False)
        self.lam = nn.Parameter(layer_scale * torch.ones(dim, 1, 1))
        self.k = k
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        return x + self.lam * (self.mixer(x) - self.norm(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused is not None:
            return
        w_mix, b_mix = self.mixer.fused_params()
        w_norm, b_norm = self.norm.fused_params()
        dim = w_mix.shape[0]
        lam = self.lam.reshape(dim, 1, 1, 1)
        w = identity_kernel(dim, dim, self.k, w_mix) + lam * (w_mix - w_norm)
        b = self.lam.reshape(dim) * (b_mix - b_norm)
        self.fused = conv_from(w, b, 1, dim)
        self.mixer, self.norm = nn.Identity(), nn.Identity()


class ConvFFN(nn.Module):
    """FastViT's convolutional FFN: depthwise kxk conv-BN, then 1x1 expand, GELU, 1x1 project."""

    def __init__(self, dim: int, ratio: float = 2.0, k: int = 5):
        super().__init__()
        hidden = int(dim * ratio)
        self.dw = ConvBN(dim, dim, k, groups=dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.dw(x))))


class Classifier(nn.Module):
    """Feature extractor + global average pool + linear head; ``pixel_values -> logits``."""

    def __init__(self, features: nn.Module, width: int, num_labels: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, num_labels)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values).mean((2, 3)))
