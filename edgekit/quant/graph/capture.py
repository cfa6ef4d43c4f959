"""Capture the deploy-time model as one ``torch.export`` program (non-strict: Python runs as Python).

A model that cannot be captured gets a one-line :class:`ModelError`: the first line of torch's reason (it names
the construct) and what to try.
"""

from __future__ import annotations

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
_FALLBACK = "use quantizer: edgekit (module-level quantization does not capture the graph)"


def _advice(message: str) -> str:
    low = message.lower()
    return next((a for frag, a in _ADVICE if frag in low), _FALLBACK)


def capture(model: torch.nn.Module, bundle: ModelBundle, sample: tuple[torch.Tensor, ...]) -> torch.fx.GraphModule:
    from ..inc import dynamic_shapes

    try:
        program = torch.export.export(model.eval(), sample, dynamic_shapes=dynamic_shapes(bundle), strict=False)
    except Exception as exc:  # torch raises many types here (UserError, RuntimeError, TorchRuntimeError, ...)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ModelError(
            f"quantizer graph: torch.export could not capture the model ({type(exc).__name__}: {first[:300]}); "
            f"try: {_advice(str(exc))}, or quantizer: edgekit"
        ) from None
    return program.module()
