"""MSE-optimal weight clipping (``quantization.weight_clipping: mse``) as torchao PT2E weight observers.

Min/max puts a channel's largest weight on the grid's end (scale = amax / 127); one large weight then coarsens the
grid for all the others. These observers try clipping ranges ``f * amax`` for ``f`` in :data:`FRACTIONS` and keep,
per output channel (or for the whole tensor), the one whose quantized weights have the lowest squared error. The
chosen clip is never above amax, so a scale is never larger than min/max's.
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e import MinMaxObserver, PerChannelMinMaxObserver

FRACTIONS = torch.linspace(0.5, 1.0, 51)


def mse_clip(rows: torch.Tensor, qmax: int) -> torch.Tensor:
    """Per row of ``rows`` (channels x values), the clip c <= amax minimising the MSE of symmetric int grid c / qmax."""
    amax = rows.abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny)
    best, best_err = amax.clone(), torch.full_like(amax, float("inf"))
    for f in FRACTIONS.tolist():
        clip = amax * f
        scale = (clip / qmax).unsqueeze(1)
        err = ((rows / scale).round().clamp(-qmax, qmax) * scale - rows).pow(2).mean(1)
        better = err < best_err
        best, best_err = torch.where(better, clip, best), torch.where(better, err, best_err)
    return best


class _MseClipMixin:
    """Keeps the (constant) weight it observed; ``calculate_qparams`` searches the clip on it."""

    weight: torch.Tensor | None = None

    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.weight = x.detach().float()
        return super().forward(x)

    def calculate_qparams(self):
        if self.weight is None or not self.weight.numel():
            return super().calculate_qparams()
        clip = mse_clip(self._rows(self.weight), self.quant_max)
        return self._calculate_qparams(-clip, clip)


class MseClipPerChannelObserver(_MseClipMixin, PerChannelMinMaxObserver):
    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        return w.movedim(self.ch_axis, 0).reshape(w.shape[self.ch_axis], -1)


class MseClipObserver(_MseClipMixin, MinMaxObserver):
    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(1, -1)

    def calculate_qparams(self):
        if self.weight is None or not self.weight.numel():
            return super().calculate_qparams()
        (clip,) = mse_clip(self._rows(self.weight), self.quant_max)
        return self._calculate_qparams(-clip, clip)
