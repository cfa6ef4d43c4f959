"""What the quantize stage hands to compile and validate: the simulated INT8 model(s) and their outputs.

edgekit's module quantizer and Neural Compressor give one simulated model for every target. The graph quantizer
gives one program per quantization profile (:mod:`edgekit.quant.graph.profiles`); a target lowers the program of
its own ``quant_profile`` and is compared with that program's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .encodings import EncodingSet


@dataclass
class Simulation:
    """One simulated INT8 model, its encodings and its outputs on the validation set."""

    model: torch.nn.Module
    encodings: EncodingSet
    outputs: np.ndarray
    profile: str | None = None  # the graph quantizer's profile; None for a one-program quantizer


@dataclass
class Quantized:
    """The quantize stage's result. ``primary`` is the report's "simulated int8" reference; ``by_profile`` holds
    the graph quantizer's programs (empty otherwise). ``encodings`` is the run's one encodings.json."""

    primary: Simulation | None = None
    encodings: EncodingSet | None = None
    info: dict[str, Any] | None = None
    by_profile: dict[str, Simulation] = field(default_factory=dict)

    def for_target(self, profile: str) -> Simulation | None:
        """The simulation a target of ``profile`` lowers and is validated against."""
        return self.by_profile.get(profile, self.primary)
