"""SmoothQuant (Xiao et al. 2023) on the captured FP32 graph, before calibration (``quantization.smooth_quant``).

A *group* is one activation X and the linears (``linear``, ``addmm``) that multiply it by a parameter weight. Per
input channel j, s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (W over all the group's linears); the weights become
W * s along their input axis and X becomes X / s, folded into X's producer: a LayerNorm's affine weight and bias,
or a linear's output rows and bias. Both rewrites are exact in FP32 (the graph computes the same function up to
float rounding); activation outliers move into the weights, which are quantized per channel and absorb them.

Where the fold is not exact (the producer has other readers, such as a post-LN residual, or is no LayerNorm or
linear), ``unfoldable: skip`` leaves the group alone and ``unfoldable: multiply`` adds a per-channel multiply
(``x * s`` on the producer's other readers, or ``x * 1/s`` in front of the group's linears). Channel maxima come
from one pass of the calibration data through the captured graph; ``alpha: auto`` keeps a sample of each group's
rows to pick its alpha (or no smoothing) by the quantized-output error of its linears.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from ...recipe import SmoothFold, SmoothQuantSpec
from ..pt2e import _owner
from .params import register_tensor, replace_tensor, tensor_of

aten = torch.ops.aten
_TINY = 1e-5
_SAMPLE_ROWS = 64  # rows kept per batch per group for alpha: auto
_MAX_ROWS = 1024


@dataclass(frozen=True)
class LinearRole:
    act: int  # argument position of the activation
    weight: int
    bias: int
    in_axis: int  # the weight's input-channel axis (its other axis is the output channel)


LINEARS: dict[object, LinearRole] = {
    aten.linear.default: LinearRole(0, 1, 2, 1),  # weight (out, in)
    aten.addmm.default: LinearRole(1, 2, 0, 0),  # transformers' Conv1D: bias + x @ W, W (in, out)
}


@dataclass
class Group:
    x: torch.fx.Node
    linears: list[torch.fx.Node]
    others: list[torch.fx.Node]  # readers of x that are not the group's linears
    producer: str | None  # "layer_norm" | "linear" | None (nothing to fold into)
    name: str
    absmax: torch.Tensor | None = None
    lo: torch.Tensor | None = None
    hi: torch.Tensor | None = None
    rows: list[torch.Tensor] = field(default_factory=list)


def _weight(gm: torch.fx.GraphModule, lin: torch.fx.Node) -> torch.Tensor | None:
    w = tensor_of(gm, lin.args[LINEARS[lin.target].weight])
    return w if w is not None and w.dim() == 2 else None


def _producer(gm: torch.fx.GraphModule, x: torch.fx.Node, channels: int) -> str | None:
    if x.op != "call_function":
        return None
    if x.target == aten.layer_norm.default and len(x.args) > 2:
        shape, weight = x.args[1], tensor_of(gm, x.args[2])
        if len(shape) == 1 and weight is not None and weight.numel() == channels:
            return "layer_norm"
    if x.target in LINEARS and x.args[LINEARS[x.target].act] is not x:
        w = _weight(gm, x)
        if w is not None and w.shape[1 - LINEARS[x.target].in_axis] == channels:
            return "linear"
    return None


def find_groups(gm: torch.fx.GraphModule) -> list[Group]:
    readers: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    for node in gm.graph.nodes:
        role = LINEARS.get(node.target) if node.op == "call_function" else None
        if role is None or len(node.args) <= role.weight:
            continue
        x, w = node.args[role.act], _weight(gm, node)
        if isinstance(x, torch.fx.Node) and w is not None and node.args[role.weight] is not x:
            val = x.meta.get("val")
            if isinstance(val, torch.Tensor) and val.dtype.is_floating_point and val.shape[-1] == w.shape[role.in_axis]:
                readers.setdefault(x, []).append(node)
    groups = []
    for x, lins in readers.items():
        others = [u for u in x.users if u not in lins]
        channels = int(x.meta["val"].shape[-1])
        groups.append(Group(x, lins, others, _producer(gm, x, channels), _owner(lins[0])))
    return groups


class _Stats(torch.fx.Interpreter):
    """Per-channel |max|, min and max (and a row sample) of each group's activation over the calibration data."""

    def __init__(self, gm: torch.fx.GraphModule, groups: list[Group], keep_rows: bool):
        super().__init__(gm)
        self.watch = {g.x: g for g in groups}
        self.keep_rows = keep_rows
        self.gen = torch.Generator().manual_seed(0)

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        group = self.watch.get(n)
        if group is not None:
            rows = out.detach().float().reshape(-1, out.shape[-1])
            amax, lo, hi = rows.abs().amax(0), rows.amin(0), rows.amax(0)
            if group.absmax is None:
                group.absmax, group.lo, group.hi = amax, lo, hi
            else:
                group.absmax = torch.maximum(group.absmax, amax)
                group.lo, group.hi = torch.minimum(group.lo, lo), torch.maximum(group.hi, hi)
            if self.keep_rows and sum(len(r) for r in group.rows) < _MAX_ROWS:
                pick = torch.randperm(len(rows), generator=self.gen)[:_SAMPLE_ROWS]
                group.rows.append(rows[pick].clone())
        return out


def _scale(group: Group, wmax: torch.Tensor, alpha: float) -> torch.Tensor:
    xmax = group.absmax.clamp_min(_TINY)
    s = xmax.pow(alpha) / wmax.clamp_min(_TINY).pow(1.0 - alpha)
    dead = (group.absmax <= _TINY) | (wmax <= _TINY)
    return torch.where(dead, torch.ones_like(s), s).clamp(_TINY, 1.0 / _TINY)


def _fake_quant_rows(x: torch.Tensor, lo: float, hi: float, symmetric: bool) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        scale = max(abs(lo), abs(hi)) / 127.5 or 1.0
        return (x / scale).round().clamp(-128, 127) * scale
    scale = (hi - lo) / 255 or 1.0
    zp = round(-lo / scale)
    return ((x / scale).round() + zp).clamp(0, 255).sub(zp) * scale


def _fake_quant_weight(w: torch.Tensor, in_axis: int) -> torch.Tensor:
    scale = w.abs().amax(in_axis, keepdim=True).clamp_min(1e-12) / 127
    return (w / scale).round().clamp(-127, 127) * scale


def _error(gm: torch.fx.GraphModule, group: Group, s: torch.Tensor | None, symmetric: bool) -> float:
    """Sum over the group's linears of the relative squared error of (quantized X / s) @ (quantized W * s)."""
    x = torch.cat(group.rows)
    ones = torch.ones_like(group.absmax)
    s = ones if s is None else s
    xq = _fake_quant_rows(x / s, float((group.lo / s).min()), float((group.hi / s).max()), symmetric)
    total = 0.0
    for lin in group.linears:
        role, w = LINEARS[lin.target], _weight(gm, lin)
        w_in_out = w.t() if role.in_axis == 1 else w  # (in, out)
        ref = x @ w_in_out
        got = xq @ _fake_quant_weight(w_in_out * s.unsqueeze(1), 0)
        total += float((got - ref).pow(2).mean() / ref.pow(2).mean().clamp_min(1e-20))
    return total


def _alpha_for(group: Group, spec: SmoothQuantSpec) -> float | str | None:
    """The group's alpha: the first ``per_layer`` glob matching one of its linears, else ``alpha``; None: leave it."""
    names = [_owner(lin) for lin in group.linears]
    for pattern, alpha in spec.per_layer.items():
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return alpha
    return spec.alpha


def _multiply(gm: torch.fx.GraphModule, x: torch.fx.Node, factor: torch.Tensor, readers: list[torch.fx.Node]):
    """Insert ``x * factor`` (per last-axis channel) and make ``readers`` read it instead of ``x``."""
    graph = gm.graph
    with graph.inserting_after(x):
        attr = graph.get_attr(register_tensor(gm, factor.to(x.meta["val"].dtype), "_smooth_scale"))
    with graph.inserting_after(attr):
        mul = graph.call_function(aten.mul.Tensor, (x, attr))
    attr.meta["val"] = getattr(gm, attr.target)
    mul.meta.update({k: v for k, v in readers[0].meta.items() if k in ("nn_module_stack", "stack_trace")})
    mul.meta["val"] = x.meta["val"]
    for r in readers:
        r.replace_input_with(x, mul)


def _apply(gm: torch.fx.GraphModule, group: Group, s: torch.Tensor, mode: SmoothFold) -> str | None:
    """Rewrite the group for scale ``s``; returns how (``layer_norm`` / ``linear`` / ``multiply``) or None (skip)."""
    folds = group.producer is not None
    if mode is SmoothFold.SKIP and (not folds or group.others):
        return None
    for lin in group.linears:
        role = LINEARS[lin.target]
        node = lin.args[role.weight]
        shape = [1, 1]
        shape[role.in_axis] = -1
        replace_tensor(gm, node, tensor_of(gm, node) * s.view(shape))
    if not folds:
        _multiply(gm, group.x, 1.0 / s, group.linears)
        return "multiply"
    p = group.x
    if group.producer == "layer_norm":
        targets = [(p.args[2], None), *([(p.args[3], None)] if len(p.args) > 3 and p.args[3] is not None else [])]
    else:
        role = LINEARS[p.target]
        out_axis = 1 - role.in_axis
        targets = [(p.args[role.weight], out_axis)]
        bias = p.args[role.bias] if len(p.args) > role.bias else None
        if tensor_of(gm, bias) is not None:
            targets.append((bias, None))
    for node, axis in targets:
        t = tensor_of(gm, node)
        shape = [-1] if axis is None else [(-1 if a == axis else 1) for a in range(2)]
        replace_tensor(gm, node, t / s.view(shape))
    if group.others:
        _multiply(gm, group.x, s, group.others)
    return group.producer


def smooth_quant(
    gm: torch.fx.GraphModule,
    batches: Callable[[], Iterable[tuple[torch.Tensor, ...]]],
    spec: SmoothQuantSpec,
    symmetric: bool,
) -> dict:
    """Smooth ``gm`` in place (new parameter tensors; the captured model's own stay untouched); the report's info."""
    groups = find_groups(gm)
    keep_rows = spec.alpha == "auto" or "auto" in spec.per_layer.values()
    stats = _Stats(gm, groups, keep_rows)
    first = None
    with torch.no_grad():
        for feeds in batches():
            out = stats.run(*feeds)
            first = (feeds, out) if first is None else first
    how: dict[str, int] = {}
    chosen: dict[str, float] = {}
    with torch.no_grad():
        for group in groups:
            if group.absmax is None:
                continue
            wmax = torch.stack([_wmax(gm, lin) for lin in group.linears]).amax(0)
            alpha = _alpha_for(group, spec)
            if alpha is None:
                how["kept (per_layer: null)"] = how.get("kept (per_layer: null)", 0) + 1
                continue
            if alpha == "auto":
                errors = {a: _error(gm, group, _scale(group, wmax, a), symmetric) for a in spec.grid}
                alpha = min(errors, key=errors.get)
                if errors[alpha] >= _error(gm, group, None, symmetric):
                    how["kept (no alpha helps)"] = how.get("kept (no alpha helps)", 0) + 1
                    continue
            done = _apply(gm, group, _scale(group, wmax, float(alpha)), spec.unfoldable)
            key = done or ("skipped (other readers)" if group.producer else "skipped (no producer to fold into)")
            how[key] = how.get(key, 0) + 1
            if done:
                chosen[group.name] = float(alpha)
    gm.graph.lint()
    gm.recompile()
    info = {"alpha": spec.alpha, "unfoldable": spec.unfoldable.value, "groups": len(groups), **how}
    if spec.per_layer or spec.alpha == "auto":
        info["alphas"] = chosen
    if first is not None:
        info["fp32_max_rel_change"] = _change(gm, *first)
    return info


def _wmax(gm: torch.fx.GraphModule, lin: torch.fx.Node) -> torch.Tensor:
    role = LINEARS[lin.target]
    return _weight(gm, lin).abs().amax(1 - role.in_axis)


def _change(gm: torch.fx.GraphModule, feeds: tuple, before) -> float:
    """Largest |after - before| over |before|'s max, on the first calibration batch: float rounding only."""
    with torch.no_grad():
        after = gm(*feeds)
    pairs = zip(torch.utils._pytree.tree_leaves(before), torch.utils._pytree.tree_leaves(after), strict=True)
    worst = 0.0
    for b, a in pairs:
        if isinstance(b, torch.Tensor) and b.dtype.is_floating_point:
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-20)))
    return worst
