"""Kernelized hashing for EcoFormer (SEED-METHODS section 4): binary codes whose inner products follow attention.

A token ``x`` (the L2-normalized shared query/key of one head) is mapped to ``b`` bits

    h(x) = sign(A (k(x) - mu)),    k(x)_j = exp(-||x - a_j||^2 / (2 sigma)),   j = 1..m anchors,

with ``sigma`` the mean squared distance of the tokens to the anchors (per sample and head, so the kernel
width follows the data) and ``mu`` a running mean of the kernel features (centring, as kernel supervised
hashing does). Codes are exactly +-1 (``where(z >= 0, 1, -1)``, never the 0 that ``sign`` gives at 0).

The hash is fitted *self-supervised* from the attention map: for each query, its ``topk`` most similar keys
are positive pairs (+1) and its ``topk`` least similar keys negative pairs (-1). The bits are relaxed with
``2 sigmoid(z) - 1`` and fitted jointly to kernel supervised hashing's objective on the labelled pairs,
``(h_i . h_j / b - S_ij)^2`` (KSH solves the same objective greedily bit by bit). That fit is an auxiliary
loss: it trains only the hash (anchors and ``A``; the tokens are detached), while the task loss trains the
projections through the codes with a straight-through estimator (identity gradient where |z| <= 1).
"""

from __future__ import annotations

import torch
from torch import nn

# Hash fit: at most this many query rows per head and sample (labels need an N x N similarity map).
MAX_FIT_QUERIES = 256
RUNNING_MOMENTUM = 0.1


def binarize(z: torch.Tensor) -> torch.Tensor:
    """+-1 codes; in training the gradient passes straight through where |z| <= 1 (STE)."""
    hard = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    if not (torch.is_grad_enabled() and z.requires_grad):
        return hard  # inference and export: one Where op
    soft = z.clamp(-1.0, 1.0)
    return hard.detach() + (soft - soft.detach())  # exactly +-1: (soft - soft) is exactly 0


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / ||x||`` written with rsqrt (lowers to every target; ``torch.norm`` does not everywhere)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def similarity_targets(scores: torch.Tensor, topk: int) -> torch.Tensor:
    """+1 at each row's ``topk`` largest scores, -1 at its ``topk`` smallest, 0 elsewhere (B, H, Nq, Nk)."""
    k = max(1, min(topk, scores.shape[-1] // 2))  # disjoint positives and negatives even for short sequences
    target = torch.zeros_like(scores)
    target.scatter_(-1, scores.topk(k, dim=-1).indices, 1.0)
    target.scatter_(-1, scores.topk(k, dim=-1, largest=False).indices, -1.0)
    return target


class KernelHash(nn.Module):
    """Per-head kernelized hash: ``heads`` independent functions from ``head_dim`` floats to ``nbits`` bits."""

    def __init__(self, heads: int, head_dim: int, nbits: int = 16, anchors: int = 25, seed: int = 0):
        super().__init__()
        self.heads, self.head_dim, self.nbits, self.m = heads, head_dim, nbits, anchors
        gen = torch.Generator().manual_seed(seed)
        self.anchors = nn.Parameter(l2_normalize(torch.randn(heads, anchors, head_dim, generator=gen)))
        self.proj = nn.Parameter(torch.randn(heads, anchors, nbits, generator=gen) * anchors**-0.5)  # A^T
        self.register_buffer("mu", torch.zeros(heads, 1, anchors))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._seed = seed
        self._ready = False  # Python-side cache of `initialized`, so traced/exported forwards never read it

    def extra_repr(self) -> str:
        return f"heads={self.heads}, head_dim={self.head_dim}, nbits={self.nbits}, anchors={self.m}"

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Anchors sampled from real tokens ``x`` (B, H, N, D), and the centring mean from their features."""
        b, h, n, d = x.shape
        gen = torch.Generator().manual_seed(self._seed)
        tokens = x.detach().float().transpose(0, 1).reshape(h, b * n, d)
        pick = torch.stack([torch.randperm(b * n, generator=gen)[: self.m] for _ in range(h)])  # (H, m)
        if pick.shape[1] < self.m:  # fewer tokens than anchors: reuse some
            pick = pick.repeat(1, -(-self.m // pick.shape[1]))[:, : self.m]
        self.anchors.copy_(torch.gather(tokens, 1, pick.unsqueeze(-1).expand(-1, -1, d)))
        self.mu.copy_(self._kernel(x.detach(), self.anchors).mean((0, 2)).unsqueeze(1))
        self.initialized.fill_(True)

    @staticmethod
    def _kernel(x: torch.Tensor, anchors: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Gaussian kernel features (B, H, N, m); sigma = mean squared distance per sample and head, over the
        tokens ``keep`` (B, 1, N, 1) marks (padding excluded, so padded positions cannot change other codes)."""
        cross = torch.matmul(x, anchors.transpose(-1, -2))  # (B, H, N, m)
        sq = (x * x).sum(-1, keepdim=True) + (anchors * anchors).sum(-1).unsqueeze(-2) - 2 * cross
        sq = sq.clamp_min(0.0)
        if keep is None:
            sigma = sq.mean((-1, -2), keepdim=True)
        else:
            sigma = (sq * keep).sum((-1, -2), keepdim=True) / (keep.sum((-1, -2), keepdim=True) * sq.shape[-1])
        return torch.exp(-sq / (2 * sigma.clamp_min(1e-6)))

    def logits(self, x: torch.Tensor, trainable: bool, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``A (k(x) - mu)`` (B, H, N, nbits). ``trainable=False`` detaches the hash (the task path)."""
        anchors, proj = (self.anchors, self.proj) if trainable else (self.anchors.detach(), self.proj.detach())
        feats = self._kernel(x, anchors, keep)
        if self.training and not trainable:
            with torch.no_grad():  # running centring mean over real tokens, updated once per training forward
                f = feats.detach()
                mean = f.mean((0, 2)) if keep is None else (f * keep).sum((0, 2)) / keep.sum((0, 2)).clamp_min(1.0)
                self.mu.lerp_(mean.unsqueeze(1), RUNNING_MOMENTUM)
        return torch.matmul(feats - self.mu, proj)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Exact +-1 codes of ``x`` (B, H, N, D); STE gradient to ``x`` in training, none to the hash."""
        if not (self._ready or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            if not bool(self.initialized):
                self.initialize(x)
            self._ready = True
        return binarize(self.logits(x, trainable=False, keep=keep))

    def fit_loss(
        self, queries: torch.Tensor, keys: torch.Tensor, topk: int, key_keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The self-supervised hash loss on the attention map of ``queries`` x ``keys`` (both detached);
        ``key_keep`` (B,1,Nk,1) drops pairs with padding keys (self-attention: queries share the positions)."""
        shared = queries is keys  # EcoFormer's shared projection: one set of relaxed codes serves both sides
        q, k = queries.detach(), keys.detach()
        yk = 2 * torch.sigmoid(self.logits(k, trainable=True, keep=key_keep)) - 1
        yq = yk if shared else 2 * torch.sigmoid(self.logits(q, trainable=True, keep=key_keep)) - 1
        if q.shape[-2] > MAX_FIT_QUERIES:
            rows = torch.randperm(q.shape[-2], device=q.device)[:MAX_FIT_QUERIES]
            q, yq = q[..., rows, :], yq[..., rows, :]
        target = similarity_targets(torch.matmul(q, k.transpose(-1, -2)), topk)
        pred = torch.matmul(yq, yk.transpose(-1, -2)) / self.nbits
        labelled = (target != 0).to(pred.dtype)
        if key_keep is not None:
            labelled = labelled * key_keep.transpose(-1, -2)
        return (((pred - target) ** 2) * labelled).sum() / labelled.sum().clamp_min(1.0)
