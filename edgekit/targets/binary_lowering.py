"""1-bit weights on real targets: stored as 1 bit per weight where the target has such a format.

A model with ``binary_weights`` exports every binarized layer as a product with a pure +-1 weight tensor
followed by a per-channel scale. Those +-1 tensors are found in each target's converted program and rewritten
into the target's 1-bit form, exactly (the values do not change), by the target's own ``Target.lower_binary``:

* ``coreml`` (``targets/coreml.py``): a 1-bit palette (``constexpr_lut_to_dense`` with a 2-entry lookup table
  {-1, +1} and 1-bit indices; coremltools ``palettize_weights``, mode ``unique``);
* ``openvino`` (``targets/openvino.py``): a ``u1`` constant (bit-packed) -> Convert -> ``FakeQuantize(levels=2)``
  mapping {0, 1} to {-1, +1}, OpenVINO's representation of binary weights;
* every other target (onnx, tflite, tensorrt): *simulated*, the +-1 values stored in float.

This module holds what they share: finding the +-1 tensors, and ``describe``/``record``, which say in each
artifact which happened (``artifact.json`` options and a note in the report).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Artifact, Target

MIN_ELEMENTS = 64  # smaller +-1 tensors are not weights of a binarized layer


def count_binary_layers(model: torch.nn.Module) -> int:
    from ..transforms.binary_weights import binary_layers

    return len(binary_layers(model))


def is_sign_tensor(value: Any) -> bool:
    arr = np.asarray(value)
    return arr.ndim >= 2 and arr.size >= MIN_ELEMENTS and arr.dtype.kind == "f" and bool(np.all(np.abs(arr) == 1))


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
