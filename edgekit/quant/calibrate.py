"""``calibrate``: edgekit's quantizer in one call, for scripts, notebooks and tests.

Captures ``model`` with ``torch.export``, annotates it by op pattern under one quantization profile, observes the
calibration data with the recipe's range estimator and converts: the result is the quantized PT2E program (the
simulated INT8 model every target lowers) and its encodings. ``edgekit run`` does the same through the pipeline's
quantize stage, one program per profile its targets need (:func:`edgekit.quant.graph.graph_quantize_profiles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..archs.base import ModelBundle
from ..data import DataSet
from ..recipe import QuantSpec
from .encodings import EncodingSet


@dataclass
class Calibrated:
    sim: torch.fx.GraphModule  # the quantized program (quantize/dequantize ops with the calibrated scales)
    encodings: EncodingSet
    info: dict[str, Any] = field(default_factory=dict)


def calibrate(
    model: torch.nn.Module,
    input_names: list[str],
    data: DataSet,
    spec: QuantSpec,
    bundle: ModelBundle | None = None,
    profile: str = "ort_ov",
    progress: bool = False,
) -> Calibrated:
    """Quantize ``model`` on ``data`` under ``profile`` (``ort_ov``, ``onnxruntime``, ``openvino``, ``full_integer``,
    ``tensorrt``; see :mod:`edgekit.quant.graph.profiles`). ``bundle`` supplies the IO spec's dynamic axes; without
    it only the batch axis is dynamic."""
    from .graph import graph_quantize_profiles

    res = graph_quantize_profiles(model, bundle, list(input_names), data, spec, (profile,), progress=progress)[profile]
    return Calibrated(res.program, res.encodings, res.info)
