"""Execute a CoreML ML Program on any OS with coremltools' own op value inference.

This is a reference interpreter, not Apple's runtime: it walks the program's ops in order and computes each
with the op's ``value_inference`` (the code coremltools uses for constant folding), plus small shims for the
ops that have none (conv, reductions, dequantize); compressed weights (int8, palettized) are materialized
with each constexpr op's own decompression. Good for numerics on Linux; its speed means
nothing, so edgekit never reports a latency from it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load_program(path: Path) -> Any:
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    ml = ct.models.MLModel(str(path), skip_model_load=True)
    spec = ml.get_spec()
    return milproto_load(spec, spec.specificationVersion, file_weights_dir=ml.weights_dir)


def _arg(op: Any, name: str, vals: dict[str, Any]) -> Any:
    var = op.inputs.get(name)
    if var is None:
        return None
    return var.val if var.val is not None else vals[var.name]


def _conv(op: Any, vals: dict[str, Any]) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(_arg(op, "x", vals), dtype=np.float32))
    w = torch.from_numpy(np.asarray(_arg(op, "weight", vals), np.float32))
    b = _arg(op, "bias", vals)
    pad_type, pad = _arg(op, "pad_type", vals), _arg(op, "pad", vals)
    padding: Any = 0
    if pad_type == "custom" and pad is not None:
        top, bottom, left, right = (int(v) for v in pad)
        x = torch.nn.functional.pad(x, [left, right, top, bottom])
    elif pad_type == "same":
        padding = "same"
    y = torch.nn.functional.conv2d(
        x,
        w,
        None if b is None else torch.from_numpy(np.asarray(b, np.float32)),
        stride=[int(v) for v in _arg(op, "strides", vals)],
        padding=padding,
        dilation=[int(v) for v in _arg(op, "dilations", vals)],
        groups=int(_arg(op, "groups", vals) or 1),
    )
    return y.numpy()


def _affine(q: Any, zp: Any, scale: Any, axis: Any) -> np.ndarray:
    q = np.asarray(q).astype(np.float32)
    zp, scale = np.asarray(zp, np.float32), np.asarray(scale, np.float32)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[int(axis or 0)] = -1
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.size > 1 else zp
    return (q - zp) * scale


def _reduce(fn: Callable[..., np.ndarray]) -> Callable[[Any, dict[str, Any]], np.ndarray]:
    def run(op: Any, vals: dict[str, Any]) -> np.ndarray:
        axes = _arg(op, "axes", vals)
        axis = None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        return fn(np.asarray(_arg(op, "x", vals)), axis=axis, keepdims=bool(_arg(op, "keep_dims", vals)))

    return run


def _batch_norm(op: Any, vals: dict[str, Any]) -> np.ndarray:
    """MIL ``batch_norm`` (inference: running statistics) over the channel axis 1."""
    x = np.asarray(_arg(op, "x", vals), np.float32)
    shape = [1, -1] + [1] * (x.ndim - 2)

    def param(name: str, default: float) -> np.ndarray:
        v = _arg(op, name, vals)
        return np.asarray(default if v is None else v, np.float32).reshape(shape if v is not None else [1])

    eps = float(_arg(op, "epsilon", vals) or 1e-5)
    y = (x - param("mean", 0.0)) / np.sqrt(param("variance", 1.0) + eps)
    return y * param("gamma", 1.0) + param("beta", 0.0)


SHIMS: dict[str, Callable[[Any, dict[str, Any]], np.ndarray]] = {
    "reduce_mean": _reduce(np.mean),
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min),
    "conv": _conv,
    "batch_norm": _batch_norm,
    "constexpr_affine_dequantize": lambda op, v: _affine(
        _arg(op, "quantized_data", v), _arg(op, "zero_point", v), _arg(op, "scale", v), _arg(op, "axis", v)
    ),
    "dequantize": lambda op, v: _affine(
        _arg(op, "input", v), _arg(op, "zero_point", v) or 0, _arg(op, "scale", v), _arg(op, "axis", v)
    ),
}


class ReferenceProgram:
    runtime = "coreml-reference"

    def __init__(self, path: Path):
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            self.program = load_program(path)
        self.fn = self.program.functions["main"]

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        vals: dict[str, Any] = {var.name: feeds[name] for name, var in self.fn.inputs.items()}
        for op in self.fn.operations:
            saved = {}
            for v in op.inputs.values():
                for var in v if isinstance(v, (list, tuple)) else [v]:
                    if var.name in vals and var.val is None:
                        saved[var] = var._sym_val
                        sym = var.sym_type()
                        sym.val = vals[var.name]
                        var._sym_val = sym
            try:
                if op.op_type == "const":
                    out = op.outputs[0].val
                elif op.op_type.startswith("constexpr_"):  # compressed weights: coremltools' own decompression
                    out = op.materialized_val_inference()
                elif op.op_type in SHIMS:
                    out = SHIMS[op.op_type](op, vals)
                else:
                    out = op.value_inference()
            except Exception as exc:
                raise RuntimeError(
                    f"CoreML reference interpreter cannot execute op '{op.op_type}' ({op.name}): {exc}"
                ) from None
            finally:
                for var, sym in saved.items():
                    var._sym_val = sym
            for var, value in zip(op.outputs, out if isinstance(out, tuple) else (out,)):
                vals[var.name] = value
        return np.asarray(vals[self.fn.outputs[0].name], dtype=np.float32)
