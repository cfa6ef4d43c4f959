"""1-bit weights, recognized by value: a tensor of only -1 and +1 (at least :data:`MIN_ELEMENTS` of them).

Whoever binarized a model (edgekit's ``binary_weights`` or the user's own code), its exported graph multiplies by a
pure +-1 tensor. The quantizer leaves such products in float (the values are exact, and 8 bits would only undo
the 1-bit storage), and the targets with a 1-bit format find the same tensors in their converted programs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MIN_ELEMENTS = 64  # smaller +-1 tensors are not weights of a binarized layer


def is_sign_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    return arr.ndim >= 2 and arr.size >= MIN_ELEMENTS and arr.dtype.kind == "f" and bool(np.all(np.abs(arr) == 1))


def sign_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the model's parameters and buffers that hold only +-1: its binarized weights."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, t in named if t.dtype.is_floating_point and is_sign_tensor(t)]
