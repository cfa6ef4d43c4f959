"""CrossViT (Chen et al., 2021): two branches at two patch sizes exchanging information through their CLS tokens.

Small variant for 28x28 images: a fine branch (``patch_sizes[0]``, e.g. 4: 49 tokens) and a coarse branch
(``patch_sizes[1]``, e.g. 7: 16 tokens), each with its own width, heads and a CLS token. Every multi-scale block
runs each branch's transformer blocks, then fuses by cross-attention: branch i's CLS token is projected to
branch j's width (``f``), used as the *only query* over [that projected CLS, branch j's patch tokens] (linear
cost in the number of tokens), added back, projected to branch i's width (``g``) and put back in front of
branch i's patch tokens. The two CLS heads' logits are averaged.

Config keys: ``patch_sizes`` (two), ``dims`` (two), ``heads`` (two), ``depths`` (blocks per branch in each
multi-scale block, two), ``blocks`` (multi-scale blocks), ``mlp_ratio``, ``num_channels``, ``image_size``,
``num_labels``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .base import ARCHS, ArchFamily, ModelBundle
from .vit_blocks import Attention, TransformerBlock, check_config, check_divides, image_bundle

DEFAULTS: dict[str, Any] = {
    "patch_sizes": [4, 7],
    "dims": [32, 64],
    "heads": [2, 4],
    "depths": [1, 2],
    "blocks": 2,
    "mlp_ratio": 2.0,
    "num_channels": 1,
    "image_size": 28,
    "num_labels": 10,
}


class CrossAttentionFusion(nn.Module):
    """Branch ``i``'s CLS attends over branch ``j``'s tokens: ``g(f(cls_i) + CA(LN [f(cls_i), patches_j]))``."""

    def __init__(self, dim_i: int, dim_j: int, heads_j: int):
        super().__init__()
        self.f = nn.Sequential(nn.LayerNorm(dim_i), nn.GELU(), nn.Linear(dim_i, dim_j))
        self.norm = nn.LayerNorm(dim_j)
        self.attn = Attention(dim_j, heads_j, keys="cross")
        self.g = nn.Sequential(nn.LayerNorm(dim_j), nn.GELU(), nn.Linear(dim_j, dim_i))

    def forward(self, cls_i: torch.Tensor, patches_j: torch.Tensor) -> torch.Tensor:
        y = self.f(cls_i)  # (B, 1, dim_j)
        z = self.norm(torch.cat([y, patches_j], dim=1))
        y = y + self.attn(z[:, :1], context=z)  # the CLS token is the only query
        return self.g(y)


class MultiScaleBlock(nn.Module):
    def __init__(self, dims: list[int], heads: list[int], depths: list[int], ratio: float):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[TransformerBlock(d, h, ratio) for _ in range(n)])
            for d, h, n in zip(dims, heads, depths, strict=True)
        )
        self.fuse = nn.ModuleList(
            [CrossAttentionFusion(dims[0], dims[1], heads[1]), CrossAttentionFusion(dims[1], dims[0], heads[0])]
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, fuse in enumerate(self.fuse):
            other = xs[1 - i]
            cls = fuse(xs[i][:, :1], other[:, 1:])
            out.append(torch.cat([cls, xs[i][:, 1:]], dim=1))
        return out


class CrossViT(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        for key in ("patch_sizes", "dims", "heads", "depths"):
            if len(cfg[key]) != 2:
                raise ModelError(f"'crossvit': {key} needs two values (fine branch, coarse branch), got {cfg[key]}")
        dims = cfg["dims"]
        self.embed = nn.ModuleList(nn.Conv2d(cfg["num_channels"], d, p, p) for d, p in zip(dims, cfg["patch_sizes"]))
        self.cls = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, d)) for d in dims)
        self.pos = nn.ParameterList(
            nn.Parameter(torch.zeros(1, check_divides("crossvit", cfg["image_size"], p) ** 2 + 1, d))
            for d, p in zip(dims, cfg["patch_sizes"])
        )
        for p in (*self.cls, *self.pos):
            nn.init.trunc_normal_(p, std=0.02)
        self.blocks = nn.ModuleList(
            MultiScaleBlock(dims, cfg["heads"], cfg["depths"], cfg["mlp_ratio"]) for _ in range(cfg["blocks"])
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.heads = nn.ModuleList(nn.Linear(d, cfg["num_labels"]) for d in dims)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b = pixel_values.shape[0]
        xs = []
        for embed, cls, pos in zip(self.embed, self.cls, self.pos):
            tokens = embed(pixel_values).flatten(2).transpose(1, 2)  # (B, N, d)
            xs.append(torch.cat([cls.expand(b, -1, -1), tokens], dim=1) + pos)
        for block in self.blocks:
            xs = block(xs)
        logits = [head(norm(x[:, 0])) for head, norm, x in zip(self.heads, self.norms, xs)]
        return (logits[0] + logits[1]) * 0.5


def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    return image_bundle("crossvit", CrossViT, check_config("crossvit", overrides, DEFAULTS, task))


ARCHS.add(
    "crossvit",
    ArchFamily("crossvit", build, "CrossViT: two patch sizes, CLS-token cross-attention between the branches"),
)
