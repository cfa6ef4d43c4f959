"""Input shapes of a CoreML program: fixed (the default) or flexible in batch and sequence.

``options.flexible_shapes`` (CoreML target), one entry per flexible dimension name (``batch``, ``sequence``):

* ``"LO..HI"`` (a string): any size from LO to HI (coremltools ``RangeDim``);
* ``[A, B, ...]`` (a list): exactly these sizes (``EnumeratedShapes``, every combination of the listed
  batch and sequence sizes; Core ML can pre-plan each, so these are usually faster than ranges).

A dimension not named stays fixed (batch 1; the calibration data's sequence length, else 64). Ranges and lists
cannot be mixed in one program (Core ML has one or the other per input). The program is exported once by
``torch.export`` with symbolic dimensions, at sizes inside the range, so it is valid at every listed shape.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import RecipeError
from ..recipe import TensorSpec

FLEXIBLE_DIMS = ("batch", "sequence")
MAX_ENUMERATED = 128  # Core ML's limit on enumerated shapes per input


@dataclass(frozen=True)
class FlexibleShapes:
    """Allowed sizes per flexible dimension: ``ranges`` (lo, hi) or ``enumerated`` sizes (one kind only)."""

    ranges: dict[str, tuple[int, int]]
    enumerated: dict[str, tuple[int, ...]]

    @classmethod
    def parse(cls, raw: Any) -> FlexibleShapes | None:
        if raw is None or raw == {}:
            return None
        if not isinstance(raw, dict):
            raise RecipeError("coreml: flexible_shapes must be a mapping like {batch: '1..8', sequence: [32, 64, 128]}")
        ranges: dict[str, tuple[int, int]] = {}
        enumerated: dict[str, tuple[int, ...]] = {}
        for dim, value in raw.items():
            if dim not in FLEXIBLE_DIMS:
                raise RecipeError(f"coreml: flexible_shapes has no dimension '{dim}' (use {', '.join(FLEXIBLE_DIMS)})")
            if isinstance(value, str) and ".." in value:
                lo, hi = (_positive(dim, v) for v in value.split("..", 1))
                if lo > hi:
                    raise RecipeError(f"coreml: flexible_shapes.{dim} '{value}' has LO > HI")
                ranges[dim] = (lo, hi)
            elif isinstance(value, (list, tuple)) and value:
                enumerated[dim] = tuple(sorted({_positive(dim, v) for v in value}))
            else:
                raise RecipeError(
                    f"coreml: flexible_shapes.{dim} must be 'LO..HI' (a range) or a list of sizes, not {value!r}"
                )
        if ranges and enumerated:
            raise RecipeError("coreml: flexible_shapes mixes ranges and lists; use one kind for all dimensions")
        return cls(ranges, enumerated)

    def sizes(self, dim: str) -> tuple[int, int] | None:
        """(smallest, largest) allowed size of ``dim``, None when it is fixed."""
        if dim in self.ranges:
            return self.ranges[dim]
        if dim in self.enumerated:
            return min(self.enumerated[dim]), max(self.enumerated[dim])
        return None

    def export_size(self, dim: str, fixed: int) -> int:
        """A size to export at: inside the allowed sizes and not 1 (torch.export specializes size-1 dims)."""
        lo, hi = self.sizes(dim) or (fixed, fixed)
        if dim in self.enumerated:
            options = [s for s in self.enumerated[dim] if s > 1]
            return options[0] if options else 1
        return min(max(lo, 2), hi)

    def describe(self) -> str:
        parts = [f"{d} {lo}..{hi}" for d, (lo, hi) in self.ranges.items()]
        parts += [f"{d} in {list(v)}" for d, v in self.enumerated.items()]
        return ", ".join(parts)


def _positive(dim: str, value: Any) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise RecipeError(f"coreml: flexible_shapes.{dim}: '{value}' is not a whole number") from None
    if n < 1:
        raise RecipeError(f"coreml: flexible_shapes.{dim}: sizes must be at least 1, not {n}")
    return n


def dynamic_shapes(specs: tuple[TensorSpec, ...], flex: FlexibleShapes) -> tuple[dict[int, Any], ...]:
    """``torch.export`` dynamic_shapes: one ``Dim`` per flexible name, shared by every input that has it."""
    dims = {}
    for name in FLEXIBLE_DIMS:
        bounds = flex.sizes(name)
        if bounds is not None:
            dims[name] = torch.export.Dim(name, min=bounds[0], max=bounds[1])
    return tuple({i: dims[d] for i, d in enumerate(s.shape) if d in dims} for s in specs)


def coreml_inputs(
    ct: Any, specs: tuple[TensorSpec, ...], sample: tuple[torch.Tensor, ...], flex: FlexibleShapes | None
) -> list[Any]:
    """``ct.TensorType`` per input: fixed at the sample's shape, ``RangeDim`` dims, or ``EnumeratedShapes``."""
    out = []
    for s, x in zip(specs, sample):
        dtype = np.int32 if s.dtype == "int64" else np.float32
        shape: Any = tuple(x.shape)
        if flex is not None and flex.ranges:
            shape = ct.Shape(
                [
                    ct.RangeDim(*flex.ranges[d], default=int(n)) if d in flex.ranges else int(n)
                    for d, n in zip(s.shape, x.shape)
                ]
            )
        elif flex is not None and flex.enumerated:
            choices = [
                flex.enumerated.get(d, (int(n),)) if isinstance(d, str) else (int(n),) for d, n in zip(s.shape, x.shape)
            ]
            shapes = [list(c) for c in itertools.product(*choices)]
            if len(shapes) > MAX_ENUMERATED:
                raise RecipeError(
                    f"coreml: flexible_shapes lists {len(shapes)} shapes for '{s.name}'; Core ML takes at most "
                    f"{MAX_ENUMERATED} (list fewer sizes or use a range 'LO..HI')"
                )
            shape = ct.EnumeratedShapes(shapes=shapes, default=list(x.shape))
        out.append(ct.TensorType(name=s.name, shape=shape, dtype=dtype))
    return out
