"""RepQ-ViT-style scale reparameterization of post-LayerNorm activations (SEED-METHODS section 1).

Post-LN activations have very different ranges per channel, which per-tensor INT8 handles badly. Calibrate the
per-channel range [lo_c, hi_c] of each norm output, then rewrite, exactly in FP32,

    x = r * x' + delta,   r_c = (hi_c - lo_c) / mean(hi - lo),   delta_c = lo_c - r_c * mean(lo)

so every channel of x' spans the same range: the norm's affine becomes (gamma / r, (beta - delta) / r) and every
Linear reading it absorbs the inverse, W' = W diag(r), b' = b + W delta. Only norms whose output is read by
Linear layers alone are rewritten (the same reader trace as ``fuse_norm``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import DataSet
from ..nn.capture import on_outputs
from ..transforms.consumers import foldable_into_linears
from ..transforms.unified_norm import UnifiedNorm


def _rescalable(m: nn.Module) -> bool:
    if isinstance(m, UnifiedNorm):
        return not m.channels_first
    return isinstance(m, nn.LayerNorm) and m.elementwise_affine and m.bias is not None and len(m.normalized_shape) == 1


def _norms(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if _rescalable(m)]


@torch.no_grad()
def equalize_norm_scales(model: nn.Module, input_names: list[str], data: DataSet, batch_size: int = 32) -> dict:
    """Rewrite ``model`` in place; return what changed (for the report)."""
    names = _norms(model)
    if not names:
        return {"norms_rescaled": 0}
    example = tuple(torch.from_numpy(data.inputs[n][:4]) for n in input_names)
    plan = foldable_into_linears(model.eval(), example, names)
    targets = {n: lin for n, lin in plan.items() if isinstance(lin, list)}
    lo: dict[str, torch.Tensor] = {}
    hi: dict[str, torch.Tensor] = {}

    def record(name: str, out: torch.Tensor) -> None:
        flat = out.detach().reshape(-1, out.shape[-1])
        lo[name] = torch.minimum(lo.get(name, flat.min(0).values), flat.min(0).values)
        hi[name] = torch.maximum(hi.get(name, flat.max(0).values), flat.max(0).values)

    with on_outputs([(n, model.get_submodule(n)) for n in targets], record):
        for feeds, _ in data.batches(batch_size):
            model(*[torch.from_numpy(feeds[n]) for n in input_names])
    for name, linears in targets.items():
        span = (hi[name] - lo[name]).clamp(min=1e-8)
        r = span / span.mean()
        delta = lo[name] - r * lo[name].mean()
        norm = model.get_submodule(name)
        norm.weight.div_(r)
        norm.bias.sub_(delta).div_(r)
        for lin_name in linears:
            lin = model.get_submodule(lin_name)
            extra = lin.weight @ delta
            lin.weight.mul_(r.unsqueeze(0))
            if lin.bias is None:
                lin.bias = nn.Parameter(extra)
            else:
                lin.bias.add_(extra)
    return {"norms_rescaled": len(targets), "norms_skipped": len(names) - len(targets)}
