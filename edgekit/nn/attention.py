"""Attention in any model: the variant interface edgekit's attention modules call, and discovery of the attention
modules of edgekit's own architectures and of Hugging Face models (heads, head size).

Shared by the architectures (which build on :class:`AttentionVariant`), the attention transforms (which attach
variants) and training (which reads attention sites); it imports neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class AttentionVariant(nn.Module):
    """How one attention module turns scores into probabilities, and how its per-head context is gated."""

    kind = "softmax"
    dropout = 0.0  # set per call from HF's attention dropout

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling: float
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Context (B, H, T, D) and the attention probabilities (None where a variant never forms them, e.g. a
        linear-time kernel). Inputs are (B, H, T, D); ``mask`` is additive."""
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        if mask is not None:
            scores = scores + mask
        probs = self.probs(scores.float()).to(query.dtype)
        probs = nn.functional.dropout(probs, p=self.dropout, training=self.training)
        return torch.matmul(probs, value), probs

    def probs(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=-1)

    def gate(self, module_input: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        return context

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


def is_native_attention(m: nn.Module) -> bool:
    """An attention module written in edgekit (``edgekit.archs.vit_blocks.Attention``): it calls its variant
    itself, so no dispatch table or hook is needed. Duck-typed so transforms do not import the architectures."""
    return bool(getattr(type(m), "edgekit_native_attention", False))


def attention_shape(m: nn.Module) -> tuple[int, int] | None:
    """(heads, head_dim) when ``m`` is an edgekit attention module, or an HF self-attention module (a config, a
    head count, a head size and a softmax scaling), else None."""
    if is_native_attention(m):
        return int(m.num_heads), int(m.head_dim)
    head_dim = getattr(m, "head_dim", None) or getattr(m, "attention_head_size", None)
    heads = getattr(m, "num_attention_heads", None) or getattr(m, "num_heads", None)
    if hasattr(m, "config") and head_dim and heads and hasattr(m, "scaling"):
        return int(heads), int(head_dim)
    return None


def hf_attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, int, int]]:
    """HF self-attention modules that dispatch through ``AttentionInterface``: (name, module, heads, head_dim)."""
    for name, m in model.named_modules():
        config = getattr(m, "config", None)
        if config is None or not hasattr(config, "_attn_implementation") or is_native_attention(m):
            continue
        from transformers import PreTrainedModel

        if isinstance(m, PreTrainedModel):
            continue
        shape = attention_shape(m)
        if shape:
            yield name, m, *shape


def native_attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, int, int]]:
    """edgekit's own attention modules (TNT, CrossViT, FMViT): (name, module, heads, head_dim)."""
    for name, m in model.named_modules():
        if is_native_attention(m):
            yield name, m, int(m.num_heads), int(m.head_dim)


def attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, int, int]]:
    """Every attention module an attention variant can be attached to: HF ones and edgekit's own."""
    yield from hf_attention_modules(model)
    yield from native_attention_modules(model)
