"""Transformer pieces shared by edgekit's own families (TNT, CrossViT, FMViT), written for every target.

:class:`Attention` is the one attention module they use. It exposes what edgekit's attention transforms look
for (``query``/``key``/``value``/``proj`` Linears, ``num_heads``, ``head_dim``, ``scaling``) and computes its
scores through its ``edgekit_attention`` variant when one is attached (clipped softmax, gated attention,
EcoFormer), plain softmax otherwise. ``keys`` says which tokens the keys come from: ``"self"`` (the queries'
tokens), ``"cross"`` (another token set, e.g. CrossViT's CLS query over the other branch) or ``"reduced"``
(spatially reduced tokens, FMViT); transforms whose math needs self-attention read it.

Only reshape, transpose, matmul, softmax, LayerNorm, GELU and Linear are used (no einsum, rank <= 5), so the
models export to ONNX, OpenVINO, TFLite (torch.export), Core ML and TensorRT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..nn.attention import AttentionVariant
from ..recipe import TensorSpec
from .base import ModelBundle, count_params

_PLAIN = AttentionVariant().eval()  # never mutated here: no dropout, nothing exported in training mode
KEY_SOURCES = ("self", "cross", "reduced")


class Attention(nn.Module):
    """Multi-head attention: queries from ``x`` (B, Nq, C), keys and values from ``context`` (B, Nk, C), which
    defaults to ``x``. Returns (B, Nq, C)."""

    edgekit_native_attention = True

    def __init__(self, dim: int, heads: int, keys: str = "self", qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ModelError(f"attention width {dim} is not a multiple of its {heads} heads; change dim or heads")
        if keys not in KEY_SOURCES:
            raise ModelError(f"attention keys must be one of {KEY_SOURCES}, got '{keys}'")
        self.num_heads, self.head_dim, self.keys = heads, dim // heads, keys
        self.scaling = self.head_dim**-0.5
        self.query = nn.Linear(dim, dim, bias=qkv_bias)
        self.key = nn.Linear(dim, dim, bias=qkv_bias)
        self.value = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.edgekit_attention: AttentionVariant | None = None

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, head_dim={self.head_dim}, keys={self.keys}"

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, D)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if context is None else context
        variant = self.edgekit_attention or _PLAIN
        q, k, v = self._heads(self.query(x)), self._heads(self.key(kv)), self._heads(self.value(kv))
        ctx, _ = variant.attend(q, k, v, None, self.scaling)
        ctx = variant.gate(x, ctx.transpose(1, 2))  # (B, Nq, H, D); the gate reads the query-side input
        b, n = x.shape[0], x.shape[1]
        return self.proj(ctx.reshape(b, n, self.num_heads * self.head_dim))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float):
        hidden = int(dim * ratio)
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(LN x)``, then ``x + mlp(LN x)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def check_config(name: str, overrides: dict[str, Any], known: dict[str, Any], task: str | None) -> dict[str, Any]:
    """The family's defaults with ``overrides`` on top; unknown keys and other tasks are typed errors."""
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ModelError(f"'{name}' config has no field(s) {unknown}; valid: {', '.join(sorted(known))}")
    if task not in (None, "classification"):
        raise ModelError(f"'{name}' models are image classifiers; task '{task}' is not supported")
    return {**known, **overrides}


def image_bundle(
    name: str, make: Callable[[dict[str, Any]], nn.Module], cfg: dict[str, Any], transformer: bool = True
) -> ModelBundle:
    """Build ``make(cfg)`` (seeded) as an image classifier bundle: ``pixel_values -> logits``."""
    torch.manual_seed(0)
    model = make(cfg).eval()
    spec = TensorSpec("pixel_values", ("batch", cfg["num_channels"], cfg["image_size"], cfg["image_size"]))
    return ModelBundle(
        model,
        (spec,),
        family=name,
        task="classification",
        output_name="logits",
        is_transformer=transformer,
        info={"config": cfg, "parameters": count_params(model)},
    )


def check_divides(name: str, image: int, patch: int, what: str = "patch_size") -> int:
    if patch <= 0 or image % patch:
        raise ModelError(f"'{name}': {what} {patch} does not divide image_size {image}; pick a divisor")
    return image // patch
