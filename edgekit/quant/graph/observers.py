"""edgekit's range estimators (minmax, percentile, MSE, entropy) as torchao PT2E observers.

Activations: :class:`EstimatorObserver` keeps torchao's exact running min/max and, for estimators other than
minmax, edgekit's bounded sample (:class:`edgekit.quant.observers.Observer`); at convert time the estimator turns
them into the clipping range, and torchao's grid arithmetic gives scale and zero point. Weights: symmetric int8
per output channel (torchao's per-channel min/max observer), or per tensor when ``per_channel`` is off.

``bits=16`` (a profile's ``activation_bits``, LiteRT's 16x8 mode): activations int16 symmetric, zero point 0, on
[-32768, 32767], as LiteRT's int16 kernels take them; weights stay int8.
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e import MinMaxObserver, PerChannelMinMaxObserver
from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec, QuantizationSpec

from ...recipe import Estimator, QuantSpec, WeightClipping
from ..observers import ESTIMATORS, Observer

QMIN, QMAX = -128, 127
QMIN16, QMAX16 = -32768, 32767
# weights: the restricted symmetric range, scale = amax / 127 (torchao's symmetric scale is amax / ((qmax - qmin)
# / 2): on [-128, 127] the largest weight of a channel lands on 127.5 and is clipped, which costs EfficientNet-Lite1's
# 9-weight depthwise channels cosine 0.988 vs 0.995); LiteRT's per-channel int8 weights use this range too
W_QMIN, W_QMAX = -127, 127


class EstimatorObserver(MinMaxObserver):
    def __init__(self, estimator: str = "minmax", percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator
        self.percentile = percentile
        self.sample = None if estimator == Estimator.MINMAX.value else Observer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sample is not None and x.numel():
            self.sample.update(x)
        return super().forward(x)

    def value_range(self) -> tuple[float, float]:
        """The clipping range: the exact min/max, or the estimator's range inside it."""
        lo, hi = float(self.min_val), float(self.max_val)
        if self.sample is None or not self.sample.count:
            return lo, hi
        spec = QuantSpec(
            estimator=Estimator(self.estimator),
            percentile=self.percentile,
            activation_symmetric=self.qscheme == torch.per_tensor_symmetric,
        )
        est_lo, est_hi = ESTIMATORS.get(self.estimator)(self.sample, spec)
        return max(est_lo, lo), min(est_hi, hi)

    def calculate_qparams(self):
        if not torch.isfinite(self.min_val) or not torch.isfinite(self.max_val):
            return super().calculate_qparams()  # nothing observed: torchao's default grid
        lo, hi = self.value_range()
        return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))


# attention scores at or below this are masked positions (HF adds finfo.min, older code -1e4 or -1e9 to the scores)
MASKED = -1e3


# how far below the largest score the grid of masked scores reaches: a masked position, clamped to the grid's
# minimum, then gets at most e^-10 (4.5e-5) of the top position's softmax weight
MASK_MARGIN = 10.0


class MaskedScoresObserver(EstimatorObserver):
    """The range of attention scores without their masked positions: a padding mask adds ~-3.4e38 to the scores,
    and a range that spans it leaves one int8 step for every real score. Masked positions land on the grid's
    minimum, which reaches at least :data:`MASK_MARGIN` below the largest score: scores in a narrow range (a small
    or freshly initialized model) would otherwise leave the masked positions a large share of the softmax (a causal
    mask leaking future tokens: a tiny Gemma 3 at cosine 0.95 instead of 0.998)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = x.detach()
        kept = values[values > MASKED]
        if kept.numel():
            super().forward(kept)
        return x

    def value_range(self) -> tuple[float, float]:
        lo, hi = super().value_range()
        return min(lo, hi - MASK_MARGIN), hi


def _spec(ctr, symmetric: bool, bits: int) -> QuantizationSpec:
    if bits == 16:
        return QuantizationSpec(torch.int16, ctr, QMIN16, QMAX16, torch.per_tensor_symmetric)
    if symmetric:
        return QuantizationSpec(torch.int8, ctr, QMIN, QMAX, torch.per_tensor_symmetric)
    return QuantizationSpec(torch.uint8, ctr, 0, 255, torch.per_tensor_affine)


def scores_spec(q: QuantSpec, symmetric: bool, bits: int = 8) -> QuantizationSpec:
    """:func:`activation_spec` for a tensor a softmax normalizes (masked attention scores)."""
    return _spec(MaskedScoresObserver.with_args(estimator=q.estimator.value, percentile=q.percentile), symmetric, bits)


def activation_spec(q: QuantSpec, symmetric: bool, bits: int = 8) -> QuantizationSpec:
    """Symmetric: int8, zero point 0. Asymmetric: uint8, the grid ONNX Runtime's fast x86 kernels take (u8 x s8);
    LiteRT gets the same grid as int8 (:func:`edgekit.quant.pt2e.activations_as_int8`). 16 bits: int16, zero
    point 0 (symmetric whatever ``symmetric`` says)."""
    return _spec(EstimatorObserver.with_args(estimator=q.estimator.value, percentile=q.percentile), symmetric, bits)


def constant_spec(bits: int) -> QuantizationSpec:
    """A constant operand of an elementwise op (a LayerNorm's gamma, the attention scale) on the activations'
    integer type, per tensor and symmetric: LiteRT's int16 MUL and ADD take int16 on both sides."""
    return _spec(MinMaxObserver, True, bits)


def weight_spec(q: QuantSpec, axis: int) -> QuantizationSpec:
    from .clipping import MseClipObserver, MseClipPerChannelObserver

    mse = q.weight_clipping is WeightClipping.MSE
    if not q.per_channel:
        obs = MseClipObserver if mse else MinMaxObserver
        return QuantizationSpec(torch.int8, obs, W_QMIN, W_QMAX, torch.per_tensor_symmetric)
    obs = MseClipPerChannelObserver if mse else PerChannelMinMaxObserver
    return QuantizationSpec(torch.int8, obs, W_QMIN, W_QMAX, torch.per_channel_symmetric, ch_axis=axis)


def probability_spec(symmetric: bool, bits: int = 8) -> FixedQParamsQuantizationSpec:
    """A softmax output (attention probabilities in [0, 1]) on the fixed grid 1/256: LiteRT's int8 SOFTMAX
    refuses any other output scale, and a calibrated range buys nothing on a tensor bounded by construction.
    16 bits: 1/32768, zero point 0, the only output grid of LiteRT's int16 SOFTMAX and LOGISTIC."""
    if bits == 16:
        return FixedQParamsQuantizationSpec(torch.int16, 1.0 / 32768, 0, QMIN16, QMAX16, torch.per_tensor_symmetric)
    if symmetric:
        return FixedQParamsQuantizationSpec(torch.int8, 1.0 / 128, 0, QMIN, QMAX, torch.per_tensor_symmetric)
    return FixedQParamsQuantizationSpec(torch.uint8, 1.0 / 256, 0, 0, 255, torch.per_tensor_affine)
