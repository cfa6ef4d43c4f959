"""Unified Normalization (SEED-METHODS section 5): a train-time LayerNorm replacement whose inference form is a
constant per-channel affine, and the ``fuse_norm`` transform that folds that affine into the next Linear.

Training: no mean subtraction; each channel is divided by the root of its second moment pooled over batch and
tokens (padding masked). Fluctuation smoothing: the forward uses the geometric mean of the last ``window``
statistics (earlier ones detached, so the gradient flows through the current batch's statistic with weight
1/window); during warm-up (fewer than ``window`` batches) the current statistic alone is used. Outlier
filtration (on for vision, off for NLP): when, for any channel, the window's arithmetic mean exceeds its
geometric mean by more than ``outlier_bound`` (relative), the batch's statistic is skipped and the running
value is used. Inference: ``y = gamma * x / sqrt(running_var + eps) + beta``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.scopes import set_module
from . import NoOptions, TransformResult, register
from .consumers import current_example_inputs, foldable_into_linears


class UnifiedNorm(nn.Module):
    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        window: int = 4,
        momentum: float = 0.1,
        outlier_filter: bool = True,
        outlier_bound: float = 0.5,
        channels_first: bool = False,
    ):
        super().__init__()
        self.dim, self.eps, self.window, self.momentum = dim, eps, window, momentum
        self.channels_first = channels_first  # [N, C, H, W] (ConvNeXt) instead of [..., C]
        self.outlier_filter, self.outlier_bound = outlier_filter, outlier_bound
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("history", torch.ones(window, dim))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long))
        self.mask: torch.Tensor | None = None  # [batch, tokens] bool, set by `padding_mask`

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, window={self.window}, outlier_filter={self.outlier_filter}"

    def _batch_stat(self, x: torch.Tensor) -> torch.Tensor:
        sq = x.float() ** 2
        if self.mask is not None and sq.dim() == 3:
            m = self.mask.to(sq.dtype).unsqueeze(-1)
            return (sq * m).sum((0, 1)) / m.sum().clamp(min=1.0)
        if self.channels_first:
            return sq.transpose(0, 1).reshape(self.dim, -1).mean(1)
        return sq.reshape(-1, self.dim).mean(0)

    def _shape(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, *([1] * (x.dim() - 2))) if self.channels_first else v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            scale, shift = self.inference_affine()
            return x * self._shape(scale, x) + self._shape(shift, x)
        stat = self._batch_stat(x)
        step = int(self.steps)
        used = stat
        if step >= self.window:
            window = torch.cat([self.history[1:], stat.unsqueeze(0)])
            geo = torch.exp(torch.log(window.clamp(min=1e-12)).mean(0))
            used = geo
            if self.outlier_filter:
                arith = window.detach().mean(0)
                if bool(((arith - geo.detach()) > self.outlier_bound * geo.detach()).any()):
                    used = self.running_var.clone()
                    self.skipped += 1
        with torch.no_grad():
            self.history.copy_(torch.cat([self.history[1:], stat.detach().unsqueeze(0)]))
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * used.detach())
            self.steps += 1
        inv = self._shape(torch.rsqrt(used + self.eps).to(x.dtype), x)
        return x * inv * self._shape(self.weight, x) + self._shape(self.bias, x)

    def inference_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight / torch.sqrt(self.running_var + self.eps), self.bias


class ChannelAffine(nn.Module):
    """``x * scale + shift`` over the last dimension: an inference-time norm that could not be folded."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, channels_first: bool = False):
        super().__init__()
        shape = (-1, 1, 1) if channels_first else (-1,)
        self.scale = nn.Parameter(scale.detach().clone().reshape(shape))
        self.shift = nn.Parameter(shift.detach().clone().reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


@contextlib.contextmanager
def padding_mask(model: nn.Module, mask: torch.Tensor) -> Iterator[None]:
    """Mask padded tokens out of every UN's training statistics for the duration of one forward."""
    norms = [m for m in model.modules() if isinstance(m, UnifiedNorm)]
    for m in norms:
        m.mask = mask.bool()
    try:
        yield
    finally:
        for m in norms:
            m.mask = None


@dataclass(frozen=True)
class UnifiedNormOptions:
    """:class:`UnifiedNorm`'s settings; ``eps`` defaults to each replaced LayerNorm's own."""

    window: int = 4
    momentum: float = 0.1
    outlier_filter: bool = True
    outlier_bound: float = 0.5
    eps: float | None = None


@register(
    "unified_norm",
    phase="train",
    exact=False,
    description="LayerNorm -> Unified Normalization (train-time statistics; needs the training stage)",
    options=UnifiedNormOptions,
)
def swap_unified_norm(model: nn.Module, options: UnifiedNormOptions) -> TransformResult:
    swapped = 0
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1 and m.elementwise_affine:
            channels_first = getattr(m, "data_format", "channels_last") == "channels_first"
            un = UnifiedNorm(
                m.normalized_shape[0],
                eps=m.eps if options.eps is None else options.eps,
                window=options.window,
                momentum=options.momentum,
                outlier_filter=options.outlier_filter,
                outlier_bound=options.outlier_bound,
                channels_first=channels_first,
            )
            un.train(m.training)  # a fresh module is in training mode; keep the model's mode
            with torch.no_grad():
                un.weight.copy_(m.weight)
                if m.bias is not None:
                    un.bias.copy_(m.bias)
            set_module(model, name, un)
            swapped += 1
    return TransformResult(model, {"layernorms_replaced": swapped})


@register(
    "fuse_norm",
    phase="deploy",
    exact=True,
    description="inference-time UN (a per-channel affine) folded into the following Linear layers",
)
def fuse_norm(model: nn.Module, options: NoOptions) -> TransformResult:
    inputs = current_example_inputs("fuse_norm")
    names = [n for n, m in model.named_modules() if isinstance(m, UnifiedNorm)]
    plan = foldable_into_linears(model.eval(), inputs, names)
    folded, kept = 0, {}
    with torch.no_grad():
        for name in names:
            un = model.get_submodule(name)
            scale, shift = un.inference_affine()
            target = plan[name]
            if isinstance(target, str):  # not foldable: keep the constant affine (no normalization op)
                set_module(model, name, ChannelAffine(scale, shift, un.channels_first))
                kept[name] = target
                continue
            for lin_name in target:
                lin = model.get_submodule(lin_name)
                w = lin.weight.clone()
                lin.weight.mul_(scale.unsqueeze(0))
                extra = w @ shift
                if lin.bias is None:
                    lin.bias = nn.Parameter(extra)
                else:
                    lin.bias.add_(extra)
            set_module(model, name, nn.Identity())
            folded += 1
    info = {"norms_folded": folded, "kept_as_affine": len(kept), **({"not_folded": kept} if kept else {})}
    return TransformResult(model, info)
