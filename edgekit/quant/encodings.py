"""The one quantization spec: per-tensor (or per-channel) scale, zero point, bit width and axis.

The quantize stage writes one :class:`EncodingSet` (``encodings.json``), read back from the quantized programs: every
profile's tensors, a tensor two profiles share stored once (a profile that forces another grid, TensorRT's symmetric
one, stores ``KEY@PROFILE``), and per profile the keys it quantizes (``meta.profiles``). Keys name the graph node
and the producing module: ``<module>/<graph node>.<weight|input|output>``. :meth:`Encoding.quantize` and
:meth:`Encoding.dequantize` apply one entry with ONNX's rounding, for readers of the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError


@dataclass(frozen=True)
class Encoding:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    bits: int = 8
    signed: bool = True
    axis: int | None = None  # per-channel axis, None for per-tensor

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def symmetric(self) -> bool:
        return self.signed and all(z == 0 for z in self.zero_point)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round-half-to-even, as ONNX QuantizeLinear does."""
        scale, zp = self._broadcast(x.ndim)
        q = np.rint(x / scale) + zp
        return np.clip(q, self.qmin, self.qmax).astype(np.int8 if self.signed else np.uint8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zp = self._broadcast(q.ndim)
        return ((q.astype(np.float32) - zp) * scale).astype(np.float32)

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point, dtype=np.float32)
        if self.axis is not None:
            shape = [1] * ndim
            shape[self.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        elif scale.size == 1:
            scale, zp = scale.reshape(()), zp.reshape(())
        return scale, zp


def affine_from_range(lo: float, hi: float, bits: int, symmetric: bool) -> tuple[float, int, bool]:
    """(scale, zero_point, signed) covering [lo, hi] with zero exactly representable.

    A tensor that was zero on every calibration sample (e.g. a head its clipped softmax switched off) gets the
    grid of [-1, 1] instead of a degenerate scale: any grid holds zero exactly, and LiteRT's converter cannot
    parse a scale printed as ``1e-12``.
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-30:
        lo, hi = -1.0, 1.0
    if symmetric:
        bound = max(abs(lo), abs(hi))
        return max(bound / (2 ** (bits - 1) - 1), 1e-12), 0, True
    levels = 2**bits - 1
    scale = max((hi - lo) / levels, 1e-12)
    zp = int(np.clip(np.rint(-lo / scale), 0, levels))
    return float(scale), zp, False


@dataclass
class EncodingSet:
    tensors: dict[str, Encoding] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Encoding:
        return self.tensors[key]

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def __len__(self) -> int:
        return len(self.tensors)

    def save(self, path: Path) -> None:
        doc = {
            "format": "edgekit-encodings/1",
            "meta": self.meta,
            "tensors": {k: asdict(v) for k, v in sorted(self.tensors.items())},
        }
        path.write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, path: Path) -> EncodingSet:
        try:
            doc = json.loads(Path(path).read_text())
            tensors = {
                k: Encoding(tuple(v["scale"]), tuple(v["zero_point"]), v["bits"], v["signed"], v["axis"])
                for k, v in doc["tensors"].items()
            }
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"'{path}' is not an edgekit encodings file: {exc}") from None
        return cls(tensors, doc.get("meta", {}))
