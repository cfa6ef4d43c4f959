"""RepQ-ViT-style scale reparameterization of post-LayerNorm activations (``quantization.scale_reparam``; SEED-METHODS
section 1), on the captured FP32 graph before calibration.

Post-LN activations have very different ranges per channel, which per-tensor INT8 handles badly. Calibrate the
per-channel range [lo_c, hi_c] of each LayerNorm output, then rewrite, exactly in FP32,

    x = r * x' + delta,   r_c = (hi_c - lo_c) / mean(hi - lo),   delta_c = lo_c - r_c * mean(lo)

so every channel of x' spans the same range: the norm's affine becomes (gamma / r, (beta - delta) / r) and every
linear reading it absorbs the inverse, W' = W diag(r), b' = b + W delta. Only LayerNorms whose output only linears
read are rewritten (the SmoothQuant groups of :mod:`.smooth` with a ``layer_norm`` producer and no other reader),
whoever wrote the model: the pattern is found in the graph, not by module class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .params import register_tensor, replace_tensor, tensor_of
from .smooth import LINEARS, Group, _Stats, _weight, find_groups


def _bias_node(gm: torch.fx.GraphModule, lin: torch.fx.Node) -> torch.fx.Node:
    """The linear's bias ``get_attr``; a bias-less ``aten.linear`` gets a zero bias first."""
    role = LINEARS[lin.target]
    bias = lin.args[role.bias] if len(lin.args) > role.bias else None
    if tensor_of(gm, bias) is not None:
        return bias
    w = _weight(gm, lin)
    zeros = torch.zeros(w.shape[1 - role.in_axis], dtype=w.dtype)
    with gm.graph.inserting_before(lin):
        node = gm.graph.get_attr(register_tensor(gm, zeros, "_reparam_bias"))
    node.meta["val"] = zeros
    lin.args = (*lin.args[: role.bias], node, *lin.args[role.bias + 1 :])
    return node


def _rescale(gm: torch.fx.GraphModule, group: Group) -> None:
    span = (group.hi - group.lo).clamp_min(1e-8)
    r = span / span.mean()
    delta = group.lo - r * group.lo.mean()
    norm = group.x
    weight, bias = norm.args[2], norm.args[3]
    replace_tensor(gm, weight, tensor_of(gm, weight) / r)
    replace_tensor(gm, bias, (tensor_of(gm, bias) - delta) / r)
    for lin in group.linears:
        role = LINEARS[lin.target]
        w = _weight(gm, lin)
        extra = delta @ (w.t() if role.in_axis == 1 else w)  # W delta, one entry per output channel
        shape = [1, 1]
        shape[role.in_axis] = -1
        replace_tensor(gm, lin.args[role.weight], w * r.view(shape))
        b = _bias_node(gm, lin)
        replace_tensor(gm, b, tensor_of(gm, b) + extra)


def _has_bias(gm: torch.fx.GraphModule, norm: torch.fx.Node) -> bool:
    return len(norm.args) > 3 and tensor_of(gm, norm.args[3]) is not None


def scale_reparam(gm: torch.fx.GraphModule, batches: Callable[[], Iterable[tuple[torch.Tensor, ...]]]) -> dict:
    """Rewrite ``gm`` in place (new parameter tensors; the captured model's own stay untouched); the report's info."""
    norms = [g for g in find_groups(gm) if g.producer == "layer_norm"]
    foldable = [g for g in norms if not g.others and _has_bias(gm, g.x)]
    stats = _Stats(gm, foldable, keep_rows=False)
    with torch.no_grad():
        for feeds in batches():
            stats.run(*feeds)
        done = [g for g in foldable if g.lo is not None]
        for group in done:
            _rescale(gm, group)
    gm.graph.lint()
    gm.recompile()
    return {"norms_rescaled": len(done), "norms_skipped": len(norms) - len(done)}
