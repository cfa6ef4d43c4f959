"""Outlier-free attention (Bondarenko et al., 2023): clipped softmax and gated attention.

Attention heads that learn to "do nothing" push their softmax inputs to extremes and create the huge
activation outliers that break per-tensor INT8. Two drop-in fixes let a head output (close to) nothing
without extreme values:

* **clipped softmax**: ``clip((zeta - gamma) * softmax(x) + gamma, 0, 1)`` with ``gamma <= 0 <= 1 <= zeta``,
  so exact zeros are reachable with finite logits (``gamma = -alpha / T`` scales with the sequence length T);
* **gated attention**: ``sigmoid(G(x_h)) * softmax(Q K^T / sqrt(d)) V`` per head h, where the gate G (linear or a
  small MLP, shared over tokens) reads that head's ``d_head`` slice of the attention input and can switch the
  head off.

Hugging Face models dispatch attention through ``AttentionInterface``; the transforms register edgekit's
implementation there, set it on the model config, and attach an :class:`AttentionVariant` to every attention
module. edgekit's own families (TNT, CrossViT, FMViT: ``archs.vit_blocks.Attention``) call the attached variant
themselves (found by ``is_native_attention``), so the same variants apply to them with no dispatch table. Every
op is a plain softmax / clip / sigmoid / multiply, so the variants export to every target. Both are
``train``-phase transforms: the effect is learned, so a recipe retrains after swapping them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import RecipeError, UnsupportedOpError
from ..nn.attention import AttentionVariant, attention_modules, is_native_attention
from . import TransformResult, register

IMPLEMENTATION = "edgekit"


class ClippedSoftmax(AttentionVariant):
    """``clip((zeta - gamma) * softmax + gamma, 0, 1)``; with ``alpha`` set, ``gamma = -alpha / T`` per call.

    Training from scratch: with ``alpha >= 1`` a uniform attention row (p = 1/T, what a freshly initialized model
    computes) is clipped to exactly zero and passes no gradient, so attention never starts learning (measured:
    a Fashion-MNIST ViT with alpha = 2 stays at chance). Use ``alpha < 1`` (or a small fixed gamma) from scratch;
    the paper's alpha in [2, 4] suits fine-tuning a model whose attention is already peaked.
    """

    kind = "clipped_softmax"

    def __init__(self, gamma: float = 0.0, zeta: float = 1.0, alpha: float | None = None):
        super().__init__()
        if alpha is None and gamma > 0:
            raise RecipeError(f"clipped_softmax: gamma must be <= 0 (only gamma < 0 clips), got {gamma}")
        if zeta < 1:
            raise RecipeError(f"clipped_softmax: zeta must be >= 1, got {zeta}")
        if alpha is not None and alpha <= 0:
            raise RecipeError(f"clipped_softmax: alpha must be > 0 (gamma = -alpha / T), got {alpha}")
        self.gamma, self.zeta, self.alpha = float(gamma), float(zeta), alpha

    def probs(self, scores: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(scores, dim=-1)
        if self.alpha is None:
            stretched = (self.zeta - self.gamma) * p + self.gamma
        else:
            if torch.compiler.is_compiling() or torch.compiler.is_exporting():
                length: torch.Tensor | int = p.shape[-1]  # torch.export (LiteRT): static shapes, T is a constant
            else:  # T from the graph, not a traced constant, so ONNX models with a dynamic sequence stay right
                length = torch.ones_like(p[..., :1, :]).sum(dim=-1, keepdim=True)
            gamma = -self.alpha / length
            stretched = (self.zeta - gamma) * p + gamma
        return torch.clamp(stretched, 0.0, 1.0)  # clipped values pass no gradient, as in the paper

    def describe(self) -> dict[str, Any]:
        gamma = f"-{self.alpha:g}/T" if self.alpha is not None else self.gamma
        return {"kind": self.kind, "gamma": gamma, "zeta": self.zeta}


class GatedAttention(AttentionVariant):
    """Per-head gate ``sigmoid(G(x_h))`` on the head's context; G is linear or a one-hidden-layer MLP.

    Written with broadcast multiplies, sums and rank-4 matmuls only (no einsum), which every target converts.
    """

    kind = "gated_attention"

    def __init__(self, heads: int, head_dim: int, pi_init: float = 0.5, hidden: int = 0):
        super().__init__()
        if not 0.0 < pi_init < 1.0:
            raise RecipeError(f"gated_attention: pi_init must be in (0, 1), got {pi_init}")
        self.heads, self.head_dim, self.hidden, self.pi_init = heads, head_dim, hidden, pi_init
        bias = math.log(pi_init / (1 - pi_init))  # sigmoid(bias) == pi_init with zero inputs
        width = hidden or head_dim
        self.weight = nn.Parameter(torch.empty(heads, head_dim, width) if hidden else torch.empty(heads, 1, width))
        nn.init.normal_(self.weight, std=0.02 if not hidden else head_dim**-0.5)
        if hidden:
            self.hidden_bias = nn.Parameter(torch.zeros(heads, 1, hidden))
            self.out_weight = nn.Parameter(torch.empty(heads, 1, hidden))
            nn.init.normal_(self.out_weight, std=0.02)
        self.bias = nn.Parameter(torch.full((heads, 1), bias))

    def gate(self, module_input: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        if module_input is None:
            raise RuntimeError("gated attention: the attention input was not captured (forward pre-hook missing)")
        b, t = module_input.shape[0], module_input.shape[1]
        x = module_input.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)
        if self.hidden:
            h = torch.relu(torch.matmul(x, self.weight) + self.hidden_bias)  # (B, H, T, hidden)
            logits = (h * self.out_weight).sum(-1)
        else:
            logits = (x * self.weight).sum(-1)  # (B, H, T)
        g = torch.sigmoid(logits + self.bias)
        return context * g.transpose(1, 2).unsqueeze(-1)  # context: (B, T, H, D)

    def describe(self) -> dict[str, Any]:
        gate = f"mlp({self.hidden})" if self.hidden else "linear"
        return {"kind": self.kind, "gate": gate, "pi_init": self.pi_init}


def edgekit_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention with the module's variant (plain softmax when it has none); HF's calling convention."""
    variant: AttentionVariant = getattr(module, "edgekit_attention", None) or _PLAIN
    variant.dropout = dropout
    context, probs = variant.attend(query, key, value, attention_mask, scaling or query.size(-1) ** -0.5)
    context = context.transpose(1, 2).contiguous()  # (B, T, H, D), HF's layout before the output projection
    captured = module.__dict__.pop("_edgekit_input", None)
    return variant.gate(captured, context), probs


_PLAIN = AttentionVariant()  # plain softmax for a module without a variant (stateless but for dropout, set per call)


def _capture_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook: keep the attention input for the gate. A module-level function (not a closure), so a
    deep copy of the model (calibration, simulation) hooks its own modules, not the original's."""
    x = args[0] if args else kwargs.get("hidden_states")
    module.__dict__["_edgekit_input"] = x


def _register_implementation() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, edgekit_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


def swap_attention(
    model: nn.Module, make: Any, transform: str, found: list[tuple[str, nn.Module, int, int]] | None = None
) -> dict[str, Any]:
    """Attach ``make(heads, head_dim)`` to every attention module (or to ``found``); HF modules also switch their
    config to edgekit's kernel and get the input-capturing hook the gate reads. edgekit's own modules pass their
    input to the variant themselves. Returns what changed (module count and the variant's description)."""
    found = list(attention_modules(model)) if found is None else found
    if not found:
        raise UnsupportedOpError(
            f"{transform}: no attention module found in {type(model).__name__} (supported: edgekit's TNT, "
            "CrossViT, FMViT; BERT, ViT, DeiT, Swin, OPT and other HF models whose attention uses AttentionInterface)"
        )
    current = getattr(found[0][1], "edgekit_attention", None)
    if current is not None:
        raise RecipeError(
            f"{transform}: the attention already uses {current.kind}; the attention variants replace each other, "
            "so list only one of clipped_softmax, gated_attention and binary attention in a recipe"
        )
    if any(not is_native_attention(m) for _, m, _, _ in found):
        _register_implementation()
    for _, module, heads, head_dim in found:
        module.edgekit_attention = make(heads, head_dim)
        if is_native_attention(module):
            continue
        module.config._attn_implementation = IMPLEMENTATION
        if not getattr(module, "_edgekit_hooked", False):
            module.register_forward_pre_hook(_capture_input, with_kwargs=True)
            module._edgekit_hooked = True
    variant = found[0][1].edgekit_attention
    return {"attention_modules": len(found), **variant.describe()}


@dataclass(frozen=True)
class ClippedSoftmaxOptions:
    """``gamma`` (<= 0; default -0.03, or 0 when ``alpha`` is set), ``zeta`` (>= 1) and ``alpha`` (> 0:
    ``gamma = -alpha / T`` per call, T the sequence length)."""

    gamma: float | None = None
    zeta: float = 1.0
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.alpha is None and self.gamma is not None and self.gamma > 0:
            raise ValueError(f"gamma must be <= 0 (only gamma < 0 clips), got {self.gamma}")
        if self.zeta < 1:
            raise ValueError(f"zeta must be >= 1, got {self.zeta}")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"alpha must be > 0 (gamma = -alpha / T), got {self.alpha}")

    def resolved_gamma(self) -> float:
        if self.gamma is not None:
            return self.gamma
        return 0.0 if self.alpha is not None else -0.03


@dataclass(frozen=True)
class GatedAttentionOptions:
    """``pi_init`` (the gate's initial value, in (0, 1)), ``gate`` (``linear`` | ``mlp``) and ``hidden`` (the
    MLP gate's width; ignored for a linear gate)."""

    pi_init: float = 0.5
    gate: str = "linear"
    hidden: int = 8

    def __post_init__(self) -> None:
        if self.gate not in ("linear", "mlp"):
            raise ValueError(f"gate must be 'linear' or 'mlp', got '{self.gate}'")
        if not 0.0 < self.pi_init < 1.0:
            raise ValueError(f"pi_init must be in (0, 1), got {self.pi_init}")


@register(
    "clipped_softmax",
    "train",
    exact=False,
    description="clipped softmax in every attention head",
    options=ClippedSoftmaxOptions,
)
def clipped_softmax(model: nn.Module, options: ClippedSoftmaxOptions) -> TransformResult:
    gamma, zeta, alpha = options.resolved_gamma(), options.zeta, options.alpha
    info = swap_attention(model, lambda h, d: ClippedSoftmax(gamma, zeta, alpha), "clipped_softmax")
    return TransformResult(model, info)


@register(
    "gated_attention",
    "train",
    exact=False,
    description="per-head sigmoid gate on the attention output",
    options=GatedAttentionOptions,
)
def gated_attention(model: nn.Module, options: GatedAttentionOptions) -> TransformResult:
    hidden = options.hidden if options.gate == "mlp" else 0
    pi_init = options.pi_init
    info = swap_attention(model, lambda h, d: GatedAttention(h, d, pi_init, hidden), "gated_attention")
    return TransformResult(model, info)
