"""EcoFormer attention (Liu et al., NeurIPS 2022): binary hash codes of a shared Q/K projection, linear time.

Queries and keys share one projection and are L2-normalized; a kernelized hash (``binary_hash``) maps each to
``b`` bits in {-1, +1}. The attention weight of query i on key j is the Hamming affinity
``h(q_i) . h(k_j) + b + 1`` (= 2 (b - Hamming distance) + 1 >= 1, so always positive), normalized over keys:

    out_i = sum_j (h_i . h_j + b + 1) v_j / sum_j (h_i . h_j + b + 1)
          = (H(Q) (H(K)^T V) + (b + 1) sum_j v_j) / (H(Q) sum_j H(K)_j + N (b + 1))

The second line is computed: O(N b D) instead of O(N^2 D), and both products have a +-1 operand, so their
multiply-accumulates are accumulations (sign flips). The paper's code adds ``(b + 1) v_i`` (the query's own
value) in the numerator where the formula above has ``(b + 1) sum_j v_j``; edgekit computes the normalized
kernel exactly as written, so the linear path equals the direct N x N computation of the same weights.

Where it applies:
* HF models whose attention dispatches through ``AttentionInterface`` (ViT, DeiT, BERT-style encoders): an
  :class:`EcoFormerAttention` variant is attached (``attention.swap_attention``) and the key projection is
  replaced by :class:`SharedKey`, so the query projection serves both;
* edgekit's own attention modules (TNT, CrossViT, FMViT) where keys are the queries' tokens; cross-attention
  and spatially reduced keys are listed in the record as not applied (all of them: an UnsupportedOpError);
* HF PVTv2, whose attention is inline: each ``PvtV2SelfAttention`` is replaced by
  :class:`PvtV2EcoFormerAttention` (shared projection over all tokens; the spatial reduction that made softmax
  affordable is dropped, as in EcoFormer's PVTv2).
Causal attention cannot use this non-causal linear form and is rejected. The training loop adds each variant's
``auxiliary_loss()`` (the hash fit) to the task loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedOpError
from ..nn.attention import AttentionVariant, hf_attention_modules, native_attention_modules
from ..nn.scopes import child_slots
from . import TransformResult, register
from .attention import swap_attention
from .binary_hash import KernelHash, l2_normalize


def hamming_attention(
    hq: torch.Tensor, hk: torch.Tensor, value: torch.Tensor, nbits: int, key_keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Linear-time normalized Hamming-affinity attention. hq (B,H,Nq,b), hk (B,H,Nk,b), value (B,H,Nk,D);
    ``key_keep`` (B,1,Nk,1) is 1 for keys to attend to, 0 for padding."""
    v1 = torch.cat([value, torch.ones_like(value[..., :1])], -1)  # the extra column counts keys: denominators
    if key_keep is not None:
        hk, v1 = hk * key_keep, v1 * key_keep
    kv = torch.matmul(hk.transpose(-1, -2), v1)  # (B, H, b, D+1)
    out = torch.matmul(hq, kv) + (nbits + 1) * v1.sum(-2, keepdim=True)  # (B, H, Nq, D+1)
    return out[..., :-1] / out[..., -1:]


def hamming_attention_quadratic(
    hq: torch.Tensor, hk: torch.Tensor, value: torch.Tensor, nbits: int, key_keep: torch.Tensor | None = None
) -> torch.Tensor:
    """The same weights formed as an explicit (Nq x Nk) map: the reference the linear path must equal."""
    weights = torch.matmul(hq, hk.transpose(-1, -2)) + (nbits + 1)
    if key_keep is not None:
        weights = weights * key_keep.transpose(-1, -2)
    return torch.matmul(weights, value) / weights.sum(-1, keepdim=True)


def key_keep_from_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B,1,Nk,1) keep-weights from an additive (or boolean) padding mask (B,1,Nq,Nk); None when no mask."""
    if mask is None:
        return None
    row = mask[..., :1, :]
    keep = row if row.dtype == torch.bool else row > torch.finfo(row.dtype).min / 2
    return keep.to(torch.float32).transpose(-1, -2)


class EcoFormerAttention(AttentionVariant):
    """Hash-coded linear attention for one attention module; ``auxiliary_loss()`` is its hash fit."""

    kind = "ecoformer"

    def __init__(
        self,
        heads: int,
        head_dim: int,
        nbits: int = 16,
        anchors: int = 25,
        topk: int = 10,
        hash_weight: float = 1.0,
        shared: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.hash = KernelHash(heads, head_dim, nbits, anchors, seed)
        self.nbits, self.topk, self.hash_weight, self.shared = nbits, topk, hash_weight, shared
        self._aux: torch.Tensor | None = None

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling: float
    ) -> tuple[torch.Tensor, None]:
        q = l2_normalize(query)
        k = q if self.shared else l2_normalize(key)  # shared: the key projection is a SharedKey placeholder
        keep = key_keep_from_mask(mask)
        hq = self.hash(q, keep)  # first: a lazy anchor initialization must precede the fit below
        hk = hq if self.shared else self.hash(k, keep)
        if self.training and self.hash_weight > 0:
            self._aux = self.hash_weight * self.hash.fit_loss(q, k, self.topk, keep)
        return hamming_attention(hq, hk, value, self.nbits, keep), None

    def auxiliary_loss(self) -> torch.Tensor:
        """The hash fit of the last training forward (then cleared); 0 outside training."""
        loss, self._aux = self._aux, None
        return loss if loss is not None and self.training else torch.zeros(())

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "nbits": self.nbits,
            "anchors": self.hash.m,
            "topk": self.topk,
            "shared_qk": self.shared,
        }


class SharedKey(nn.Module):
    """Stands in for the key projection under EcoFormer's shared Q/K projection. The variant reads the query
    as the key, so this returns its input unchanged: no parameters, no compute, dead code in the export."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _share_projection(module: nn.Module, head_dim: int) -> None:
    for q_name, k_name in (("q_proj", "k_proj"), ("query", "key")):
        q, k = getattr(module, q_name, None), getattr(module, k_name, None)
        if isinstance(q, nn.Linear) and isinstance(k, nn.Linear):
            if q.in_features % head_dim:  # HF views the key as (B, T, -1, head_dim) before the variant ignores it
                raise UnsupportedOpError(
                    f"ecoformer: {type(module).__name__} input width {q.in_features} is not a multiple of the head "
                    f"size {head_dim}; use options: {{shared_qk: false}}"
                )
            setattr(module, k_name, SharedKey())
            return
    raise UnsupportedOpError(
        f"ecoformer: cannot find the query/key projections of {type(module).__name__} (q_proj/k_proj or "
        "query/key); use options: {shared_qk: false}"
    )


class PvtV2EcoFormerAttention(nn.Module):
    """EcoFormer in place of HF ``PvtV2SelfAttention``: same call signature, query/value/output projections
    taken over; the key projection and the spatial reduction (conv + norm) are dropped."""

    def __init__(self, original: nn.Module, variant: EcoFormerAttention):
        super().__init__()
        self.num_attention_heads = original.num_attention_heads
        self.attention_head_size = original.attention_head_size
        self.query, self.value, self.proj, self.proj_drop = (
            original.query,
            original.value,
            original.proj,
            original.proj_drop,
        )
        self.key = None if variant.shared else original.key
        self.edgekit_attention = variant

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(
        self, hidden_states: torch.Tensor, height: int, width: int, output_attentions: bool = False
    ) -> tuple[torch.Tensor, ...]:
        q = self._heads(self.query(hidden_states))
        k = q if self.key is None else self._heads(self.key(hidden_states))
        context, _ = self.edgekit_attention.attend(q, k, self._heads(self.value(hidden_states)), None, 1.0)
        context = context.transpose(1, 2).reshape(hidden_states.shape)
        out = self.proj_drop(self.proj(context))
        return (out, None) if output_attentions else (out,)


def _pvt_attention_modules(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    try:
        from transformers.models.pvt_v2.modeling_pvt_v2 import PvtV2SelfAttention
    except ImportError:  # transformers absent: no HF PVTv2 in the model either
        return
    for parent, name, _, child in child_slots(model):
        if isinstance(child, PvtV2SelfAttention):
            yield parent, name, child


Swapped = tuple[int, dict[str, str]]  # (modules swapped, {module name: why not applied})


def _swap_pvt(model: nn.Module, make: Callable[[int, int], EcoFormerAttention]) -> Swapped:
    found = list(_pvt_attention_modules(model))
    for parent, name, child in found:
        variant = make(child.num_attention_heads, child.attention_head_size)
        setattr(parent, name, PvtV2EcoFormerAttention(child, variant))
    return len(found), {}


def _swap_interface(model: nn.Module, make: Callable[[int, int], EcoFormerAttention], shared: bool) -> Swapped:
    found = list(hf_attention_modules(model))
    for name, module, _, _ in found:
        if getattr(module, "is_causal", False):
            raise UnsupportedOpError(
                f"ecoformer: attention '{name}' is causal; EcoFormer's linear form is non-causal (encoders only)"
            )
    if not found:
        return 0, {}
    swap_attention(model, make, "ecoformer", found)
    if shared:
        for _, module, _, head_dim in found:
            _share_projection(module, head_dim)
    return len(found), {}


def native_ecoformer_reason(module: nn.Module) -> str | None:
    """Why EcoFormer's math does not apply to an edgekit attention module, or None when it does.

    The shared Q/K projection and the hash fit (each query's most and least similar keys among the same tokens)
    assume self-attention over one token set: a query-only cross-attention (CrossViT's CLS token over the other
    branch) and attention over spatially reduced keys (FMViT with ``sr_ratio > 1``) are not that."""
    keys = getattr(module, "keys", "self")
    if keys == "cross":
        return "cross-attention (queries and keys are different token sets; a single CLS query in CrossViT)"
    if keys == "reduced":
        return "keys are spatially reduced tokens, not the queries' tokens (FMViT: set model.config sr_ratio: 1)"
    return None


def _swap_native(model: nn.Module, make: Callable[[int, int], EcoFormerAttention], shared: bool) -> Swapped:
    """edgekit's own attention modules where the math applies; the others are listed (with why) in the
    transform's record, and the transform fails when none applies."""
    found = list(native_attention_modules(model))
    usable = [f for f in found if native_ecoformer_reason(f[1]) is None]
    skipped = {name: native_ecoformer_reason(m) for name, m, _, _ in found if native_ecoformer_reason(m)}
    if found and not usable:
        first = next(iter(skipped.items()))
        raise UnsupportedOpError(
            f"ecoformer: none of the {len(found)} attention modules of {type(model).__name__} is self-attention "
            f"over one token set ('{first[0]}': {first[1]}); use clipped_softmax or gated_attention instead"
        )
    if not usable:
        return 0, {}
    swap_attention(model, make, "ecoformer", usable)
    if shared:
        for _, module, _, head_dim in usable:
            _share_projection(module, head_dim)
    return len(usable), skipped


# How each attention family is swapped; every one is tried (a model holds one family or none).
SWAPPERS: dict[str, Callable[[nn.Module, Callable[[int, int], EcoFormerAttention], bool], Swapped]] = {
    "hf_attention_interface": _swap_interface,
    "hf_pvt_v2": lambda model, make, shared: _swap_pvt(model, make),
    "edgekit": _swap_native,
}


def ecoformer_modules(model: nn.Module) -> list[EcoFormerAttention]:
    return [m for m in model.modules() if isinstance(m, EcoFormerAttention)]


@dataclass(frozen=True)
class EcoFormerOptions:
    """``nbits`` (hash bits), ``anchors`` (kernel anchors per head), ``topk`` (most/least similar keys the hash
    fit reproduces), ``hash_weight`` (the fit's weight in the training loss), ``shared_qk`` (one projection for
    queries and keys) and ``seed`` (the anchors' draw; each layer adds its index)."""

    nbits: int = 16
    anchors: int = 25
    topk: int = 10
    hash_weight: float = 1.0
    shared_qk: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nbits < 1 or self.anchors < 2 or self.topk < 1 or self.hash_weight < 0:
            raise ValueError(
                f"need nbits >= 1, anchors >= 2, topk >= 1 and hash_weight >= 0 (got nbits={self.nbits}, "
                f"anchors={self.anchors}, topk={self.topk}, hash_weight={self.hash_weight})"
            )


@register(
    "ecoformer",
    "train",
    exact=False,
    description="EcoFormer: kernelized-hash binary attention, linear time",
    options=EcoFormerOptions,
)
def ecoformer(model: nn.Module, options: EcoFormerOptions) -> TransformResult:
    nbits, anchors, topk = options.nbits, options.anchors, options.topk
    hash_weight, shared, seed = options.hash_weight, options.shared_qk, options.seed
    counter = iter(range(1 << 30))

    def make(heads: int, head_dim: int) -> EcoFormerAttention:  # a different anchor draw per layer
        return EcoFormerAttention(heads, head_dim, nbits, anchors, topk, hash_weight, shared, seed + next(counter))

    swapped = {kind: fn(model, make, shared) for kind, fn in SWAPPERS.items()}
    total = sum(count for count, _ in swapped.values())
    skipped = {name: why for _, not_applied in swapped.values() for name, why in not_applied.items()}
    if not total:
        raise UnsupportedOpError(
            f"ecoformer: no attention module found in {type(model).__name__} (supported: HF models whose attention "
            "uses AttentionInterface, e.g. ViT, DeiT, BERT; HF PVTv2; edgekit's TNT, CrossViT and FMViT)"
        )
    _initialize_from_examples(model)
    info = {
        "attention_modules": total,
        **ecoformer_modules(model)[0].describe(),
        **({"not_applied": skipped} if skipped else {}),
    }
    return TransformResult(model, info)


def _initialize_from_examples(model: nn.Module) -> None:
    """Sample each hash's anchors from real tokens when the pipeline provides example inputs; otherwise the
    first forward does it."""
    from ..errors import ModelError
    from .consumers import current_example_inputs

    try:
        inputs = current_example_inputs("ecoformer")
    except ModelError:
        return
    was_training = model.training
    with torch.no_grad():
        model.eval()(*inputs)
    model.train(was_training)


@torch.no_grad()
def hash_fit_losses(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[float]:
    """Each EcoFormer layer's hash loss on ``inputs`` without changing the model (a diagnostic: how well the
    codes reproduce each query's most and least similar keys; 1.0 is a hash that knows nothing)."""
    variants = ecoformer_modules(model)
    was_training = model.training
    model.eval()
    for v in variants:  # the fit is computed in "training" mode of the variant only: no running-mean update
        v.training = True
    try:
        model(*inputs)
        return [float(v.auxiliary_loss()) / v.hash_weight if v.hash_weight else float("nan") for v in variants]
    finally:
        model.train(was_training)
