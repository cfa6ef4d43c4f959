"""Named quantization settings, so results compare with a paper's or a runtime's numbers.

A recipe writes ``quantization: {preset: NAME, calibration: ...}``; the preset's keys are filled in at load
time and any key the recipe states itself wins. The recipe saved with a run holds the expanded values.

This module sits below :mod:`edgekit.recipe`, which expands presets while it parses.
"""

from __future__ import annotations

from typing import Any

from .errors import RecipeError, did_you_mean

# Bondarenko et al. 2023 ("Quantizable Transformers"): symmetric per-tensor weights, asymmetric per-tensor
# activations, static min-max ranges over 16 calibration batches, every layer's input and output quantized.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-w8a8": {
        "estimator": "minmax",
        "per_channel": False,
        "activation_symmetric": False,
        "quantize_outputs": True,
        "calibration_batches": 16,
    },
}


def expand_preset(quant: dict[str, Any], where: str, default_batch_size: int) -> dict[str, Any]:
    """``quant`` with its preset's settings filled in under the explicitly given keys; a preset's batch count
    becomes a sample count at the calibration batch size (``default_batch_size`` when the recipe gives none)."""
    name = quant.get("preset")
    if name is None:
        return quant
    if name not in PRESETS:
        raise RecipeError(f"{where}: unknown preset '{name}'{did_you_mean(str(name), PRESETS)}")
    preset = dict(PRESETS[name])
    batches = preset.pop("calibration_batches", None)
    out = {**preset, **quant}
    calib = out.get("calibration")
    if batches and isinstance(calib, dict) and "samples" not in calib:
        out["calibration"] = {**calib, "samples": batches * int(calib.get("batch_size", default_batch_size))}
    return out
