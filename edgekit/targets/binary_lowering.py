"""1-bit weights on real targets: stored as 1 bit per weight where the target has such a format.

A binarized model (``binary_weights``, or any model whose weights hold only +-1) exports every binarized layer as a
product with a pure +-1 weight tensor followed by a per-channel scale; the quantizer leaves those products in float
(:mod:`edgekit.nn.signs`), so the +-1 tensors are there at every precision. They are found in each target's
converted program and rewritten into the target's 1-bit form, exactly (the values do not change), by the target's
own ``Target.lower_binary``:

* ``coreml`` (``targets/coreml.py``): a 1-bit palette (``constexpr_lut_to_dense`` with a 2-entry lookup table
  {-1, +1} and 1-bit indices; coremltools ``palettize_weights``, mode ``unique``);
* ``openvino`` (``targets/openvino.py``): a ``u1`` constant (bit-packed) -> Convert -> ``FakeQuantize(levels=2)``
  mapping {0, 1} to {-1, +1}, OpenVINO's representation of binary weights;
* every other target (onnx, tflite, tensorrt): *simulated*, the +-1 values stored in float.

This module holds what they share: how many +-1 tensors the model has (by value, whatever module holds them), and
``describe``/``record``, which say in each artifact which happened (``artifact.json`` options and a note in the
report).
"""

from __future__ import annotations

from typing import Any

import torch

from ..nn.signs import MIN_ELEMENTS, is_sign_tensor, sign_tensors
from .base import Artifact, Target

__all__ = ["MIN_ELEMENTS", "count_binary_layers", "describe", "is_sign_tensor", "lower_binary_weights", "record"]


def count_binary_layers(model: torch.nn.Module) -> int:
    return len(sign_tensors(model))


def lower_binary_weights(target: Target, model: torch.nn.Module, program: Any, art: Artifact) -> Any:
    """Rewrite the +-1 weight tensors of ``program`` (the target's converted model) into its 1-bit form
    (``target.lower_binary``; unchanged where the target has none)."""
    expected = count_binary_layers(model)
    if not expected:
        return program
    return target.lower_binary(program, expected, art)


def describe(target: str, model: torch.nn.Module, art: Artifact) -> None:
    """Say in the artifact whether its 1-bit weights are lowered (set by a lowering) or simulated."""
    expected = count_binary_layers(model)
    if not expected or "binary_weights" in art.options:
        return
    art.options["binary_weights"] = {"layers": expected, "lowered": 0, "mode": "simulated", "format": "float32 +-1"}
    art.notes.append(
        f"1-bit weights simulated: {target} has no 1-bit weight format here, so the +-1 weights of {expected} "
        "binarized layers are stored in float (same numbers, no size gain)"
    )


def record(art: Artifact, expected: int, lowered: int, fmt: str) -> None:
    mode = "lowered" if lowered == expected else ("partly lowered" if lowered else "simulated")
    art.options["binary_weights"] = {"layers": expected, "lowered": lowered, "mode": mode, "format": fmt}
    art.notes.append(f"1-bit weights {mode}: {lowered} of {expected} binarized layers stored as {fmt}")
