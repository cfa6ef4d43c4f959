"""The graph quantizer's optional passes, in the order :func:`graph_quantize` runs them.

Before calibration, on the captured FP32 graph: scale reparameterization (``scale_reparam``), then SmoothQuant
(``smooth_quant``). After ``convert_pt2e``: Hessian-aware weight rounding (``weight_rounding``, with its layers'
own mean-shift correction when ``bias_correction`` is on), then bias correction (``bias_correction``) of the other
layers. MSE weight clipping (``weight_clipping``) is a weight observer (:mod:`.clipping`), chosen by
:func:`.observers.weight_spec`; it is only recorded here. Each pass adds its entry to the report's calibration info.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ...recipe import QuantSpec, WeightClipping
from ..pt2e import ProgramResult

Batches = Callable[[], Iterable[tuple[torch.Tensor, ...]]]


class GraphPasses:
    def __init__(self, q: QuantSpec, batches: Batches):
        self.q, self.batches = q, batches
        self.info: dict = {"weight_clipping": q.weight_clipping.value}
        if q.weight_clipping is WeightClipping.MSE:
            self.info["weight_clipping"] = "mse (clip searched in 0.5..1.0 x amax)"

    def before_calibration(self, gm: torch.fx.GraphModule, symmetric: bool) -> None:
        """On the captured graph, once for every profile (a tensor two profiles share keeps one scale)."""
        if self.q.scale_reparam:
            from .scale_reparam import scale_reparam

            self.info["scale_reparam"] = scale_reparam(gm, self.batches)
        if self.q.smooth_quant is not None:
            from .smooth import smooth_quant

            self.info["smooth_quant"] = smooth_quant(gm, self.batches, self.q.smooth_quant, symmetric)

    def after_convert(self, res: ProgramResult) -> None:
        """On one profile's converted program (biases are not quantized, so its encodings stay valid)."""
        res.info.update(self.info)
        if self.q.weight_rounding is not None:  # first: bias correction sees a re-rounded weight as exact
            from .rounding import round_weights

            res.info["weight_rounding"] = round_weights(
                res.program, self.batches, self.q.weight_rounding, self.q.bias_correction
            )
        if self.q.bias_correction:
            from .bias_correction import correct_bias

            res.info["bias_correction"] = correct_bias(res.program, self.batches)
