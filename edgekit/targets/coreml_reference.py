"""Execute a CoreML ML Program on any OS with coremltools' own op value inference.

This is a reference interpreter, not Apple's runtime: it walks the program's ops in order and computes each
with the op's ``value_inference`` (the code coremltools uses for constant folding); the ops without usable
value inference run edgekit's kernels (``coreml_kernels``: conv, pooling, norms, gather/scatter, dequantize, and
the shape-bound ops of flexible-shape programs); compressed weights (int8, palettized) are materialized with
each constexpr op's own decompression. Good for numerics on Linux; its speed
means nothing, so edgekit never reports a latency from it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .coreml_kernels import KERNELS


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
    if isinstance(var, (list, tuple)):  # variadic inputs (concat, stack)
        return [v.val if v.val is not None else vals[v.name] for v in var]
    return var.val if var.val is not None else vals[var.name]


def _bind(op: Any, vals: dict[str, Any], saved: dict[Any, Any]) -> None:
    """Give the op's runtime inputs to its value inference (which reads ``var.val``); ``saved`` restores them."""
    for v in op.inputs.values():
        for var in v if isinstance(v, (list, tuple)) else [v]:
            if var.name in vals and var.val is None:
                saved[var] = var._sym_val
                var._sym_val = _typed(vals[var.name])


def _typed(value: Any) -> Any:
    """A MIL value typed by the runtime value itself: a flexible program declares symbolic shapes, and one with
    a scalar-typed input can carry a broadcast tensor at runtime."""
    from coremltools.converters.mil.mil import types

    arr = np.asarray(value)
    builtin = types.numpy_type_to_builtin_type(arr.dtype)
    typed = (types.tensor(builtin, arr.shape) if arr.ndim else builtin)()
    typed.val = arr if arr.ndim else arr.dtype.type(arr)
    return typed


class ReferenceProgram:
    runtime = "coreml-reference"

    def __init__(self, path: Path | None = None, program: Any = None):
        """From a saved .mlpackage (``path``) or an in-memory pymil ``program`` (tests build single ops)."""
        if program is None:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                program = load_program(path)
        self.program = program
        self.fn = self.program.functions["main"]

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        vals: dict[str, Any] = {var.name: feeds[name] for name, var in self.fn.inputs.items()}
        for op in self.fn.operations:
            saved: dict[Any, Any] = {}
            try:
                if op.op_type == "const":
                    out = op.outputs[0].val
                elif op.op_type.startswith("constexpr_"):  # compressed weights: coremltools' own decompression
                    out = op.materialized_val_inference()
                elif op.op_type in KERNELS:
                    out = KERNELS[op.op_type](lambda name, op=op: _arg(op, name, vals), op)
                else:
                    _bind(op, vals, saved)
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
