"""Capture the deploy-time model as one ``torch.export`` program (non-strict: Python runs as Python).

A model that cannot be captured gets a one-line :class:`ModelError`: the first line of torch's reason (it names
the construct) and what to try. The helpers here (feeds as tensors, the dynamic axes, a quiet context) are shared
by every quantizer that captures (edgekit's and Neural Compressor's) and by the targets that re-export a program.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ...archs.base import ModelBundle
from ...errors import ModelError

# (fragment of torch's message, what to try): the first match wins
_ADVICE: tuple[tuple[str, str], ...] = (
    ("data-dependent", "replace Python control flow on tensor values with torch.where/torch.cond"),
    ("guard", "replace Python control flow on tensor values or shapes with torch.where/torch.cond"),
    ("constraint", "the model fixes an axis the IO spec declares dynamic: declare it static in the inputs"),
    ("unsupported", "rewrite or remove that construct in forward()"),
)
_FALLBACK = "rewrite that part of forward(), or use quantizer: native (the runtime's own quantizer)"


def _advice(message: str) -> str:
    low = message.lower()
    return next((a for frag, a in _ADVICE if frag in low), _FALLBACK)


def as_tensors(feeds: dict[str, np.ndarray], names: list[str]) -> tuple[torch.Tensor, ...]:
    """A batch of named numpy feeds as the model's positional tensor arguments."""
    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)


def dynamic_shapes(bundle: ModelBundle | None, count: int = 1, model: Any = None) -> tuple[Any, ...]:
    """Every named axis of the IO spec (batch, sequence) stays dynamic in the captured program; without an IO spec
    (a bare module), the batch axis of each of its ``count`` inputs. ``model``: the module being exported, whose
    ``forward(*inputs)`` (edgekit's wrapper of an HF checkpoint) takes them as one tuple argument."""
    if bundle is None:
        shapes = tuple({0: torch.export.Dim.AUTO} for _ in range(count))
    else:
        shapes = tuple({i: torch.export.Dim.AUTO for i in s.dynamic_axes} for s in bundle.inputs)
    forward = getattr(model, "forward", None)
    if forward is not None and not isinstance(model, torch.fx.GraphModule):
        kinds = [p.kind for p in inspect.signature(forward).parameters.values()]
        if kinds and kinds[0] is inspect.Parameter.VAR_POSITIONAL:
            return (shapes,)
    return shapes


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Quantizers log every step at WARNING/INFO and torch.export prints; edgekit reports what matters itself."""
    loggers = [logging.getLogger(n) for n in ("neural_compressor", "torch._export", "torch.export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def capture(
    model: torch.nn.Module, bundle: ModelBundle | None, sample: tuple[torch.Tensor, ...]
) -> torch.fx.GraphModule:
    try:
        program = torch.export.export(
            model.eval(), sample, dynamic_shapes=dynamic_shapes(bundle, len(sample), model), strict=False
        )
    except Exception as exc:  # torch raises many types here (UserError, RuntimeError, TorchRuntimeError, ...)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ModelError(
            f"int8: torch.export could not capture the model for quantization ({type(exc).__name__}: "
            f"{first[:300]}); try: {_advice(str(exc))}"
        ) from None
    return program.module()
