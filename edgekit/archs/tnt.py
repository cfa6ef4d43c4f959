"""TNT, Transformer in Transformer (Han et al., 2021), small variant for 28x28 images.

The image is cut into ``patch_size`` x ``patch_size`` patches ("visual sentences"); every pixel of a patch,
lifted to ``inner_dim`` channels by a 3x3 conv stem, is a "visual word" (``patch_size**2`` words per patch).
Each block runs

* an inner transformer block over the words of each patch (word-level attention, batch = images x patches),
* the words of each patch flattened, normalized and projected to ``dim`` and added to that patch's embedding,
* an outer transformer block over the patch embeddings and a CLS token (sentence-level attention).

The sentence embeddings start as the same projection of the stem's words, plus a learned position
embedding; the CLS token's final state feeds the classifier. Config keys: ``patch_size``, ``inner_dim``,
``inner_heads``, ``dim``, ``heads``, ``depth``, ``mlp_ratio``, ``num_channels``, ``image_size``, ``num_labels``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ARCHS, ArchFamily, ModelBundle
from .vit_blocks import TransformerBlock, check_config, check_divides, image_bundle

DEFAULTS: dict[str, Any] = {
    "patch_size": 4,
    "inner_dim": 16,
    "inner_heads": 2,
    "dim": 64,
    "heads": 4,
    "depth": 2,
    "mlp_ratio": 2.0,
    "num_channels": 1,
    "image_size": 28,
    "num_labels": 10,
}


def words_of_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * patches, patch * patch, C): each patch's pixels as its words, rank <= 5 throughout
    (Core ML's limit)."""
    b, c, h, w = x.shape
    ph, pw = h // patch, w // patch
    x = x.reshape(b * c * ph, patch, pw, patch)  # rows of one patch row, split by patch column
    x = x.transpose(1, 2).reshape(b, c, ph * pw, patch * patch)  # (B, C, P, words)
    return x.permute(0, 2, 3, 1).reshape(b * ph * pw, patch * patch, c)


class TNTBlock(nn.Module):
    def __init__(self, words: int, inner_dim: int, inner_heads: int, dim: int, heads: int, ratio: float):
        super().__init__()
        self.inner = TransformerBlock(inner_dim, inner_heads, ratio)
        self.word_norm = nn.LayerNorm(words * inner_dim)
        self.word_proj = nn.Linear(words * inner_dim, dim)
        self.outer = TransformerBlock(dim, heads, ratio)

    def forward(self, words: torch.Tensor, sentences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        words = self.inner(words)  # (B*P, W, c)
        b, n = sentences.shape[0], sentences.shape[1] - 1
        added = self.word_proj(self.word_norm(words.reshape(b, n, -1)))  # (B, P, dim)
        sentences = torch.cat([sentences[:, :1], sentences[:, 1:] + added], dim=1)
        return words, self.outer(sentences)


class TNT(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.patch = cfg["patch_size"]
        side = check_divides("tnt", cfg["image_size"], self.patch)
        words, c, dim = self.patch**2, cfg["inner_dim"], cfg["dim"]
        self.stem = nn.Conv2d(cfg["num_channels"], c, 3, padding=1)
        self.word_pos = nn.Parameter(torch.zeros(1, words, c))
        self.sentence_norm = nn.LayerNorm(words * c)
        self.sentence_proj = nn.Linear(words * c, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.sentence_pos = nn.Parameter(torch.zeros(1, side * side + 1, dim))
        for p in (self.word_pos, self.cls, self.sentence_pos):
            nn.init.trunc_normal_(p, std=0.02)
        self.blocks = nn.ModuleList(
            TNTBlock(words, c, cfg["inner_heads"], dim, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, cfg["num_labels"])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b = pixel_values.shape[0]
        words = words_of_patches(self.stem(pixel_values), self.patch) + self.word_pos  # (B*P, W, c)
        n = words.shape[0] // b
        patches = self.sentence_proj(self.sentence_norm(words.reshape(b, n, -1)))
        sentences = torch.cat([self.cls.expand(b, -1, -1), patches], dim=1) + self.sentence_pos
        for block in self.blocks:
            words, sentences = block(words, sentences)
        return self.head(self.norm(sentences[:, 0]))


def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    return image_bundle("tnt", TNT, check_config("tnt", overrides, DEFAULTS, task))


ARCHS.add("tnt", ArchFamily("tnt", build, "TNT: word attention inside each patch + sentence attention across patches"))
