"""What the quantize stage hands to compile and validate: the simulated INT8 program(s) and their outputs.

edgekit's quantizer gives one program per quantization profile (:mod:`edgekit.quant.graph.profiles`); a target
lowers the program of its own ``quant_profile`` and is compared with that program's outputs. Neural Compressor
gives one program for every target.
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
    profile: str | None = None  # edgekit's quantization profile; None for a one-program quantizer (INC)


@dataclass
class Quantized:
    """The quantize stage's result. ``primary`` is the report's "simulated int8" reference; ``by_profile`` holds
    edgekit's per-profile programs (empty for Neural Compressor). ``encodings`` is the run's one encodings.json."""

    primary: Simulation | None = None
    encodings: EncodingSet | None = None
    info: dict[str, Any] | None = None
    by_profile: dict[str, Simulation] = field(default_factory=dict)
    failure: str | None = None  # why there is no INT8 program (the model could not be captured): its rows' reason

    def for_target(self, profile: str) -> Simulation | None:
        """The simulation a target of ``profile`` lowers and is validated against."""
        return self.by_profile.get(profile, self.primary)
