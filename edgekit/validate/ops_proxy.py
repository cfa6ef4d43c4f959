"""An energy / operation proxy computed from one traced forward pass.

Every matrix product the model executes (``F.linear``, convolutions, ``matmul``/``bmm``/``@``/``einsum``) is
intercepted with a ``TorchFunctionMode`` and counted in multiply-accumulates from its real operand shapes. A
product with an operand whose values are all in {-1, 0, +1} (EcoFormer's hash codes, the sign tensor of a
1-bit layer) needs no multiplier: its multiply-accumulates are counted as accumulations instead. Products run
inside an attention module (class name ending in ``Attention``) that are not weight layers form the
*attention core*. Energy uses 45 nm, 32-bit float costs (Horowitz, ISSCC 2014: multiply 3.7 pJ, add 0.9 pJ),
as in the EcoFormer paper: a proxy of on-chip compute energy, not a measurement (memory traffic is not in it).

``attention_cost_curve`` runs one attention layer alone on synthetic inputs of growing sequence length T, so
the quadratic (softmax) or linear (EcoFormer) growth is read from the counted graph, not from a formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from ..nn.capture import module_stack

PJ_PER_MAC = 3.7 + 0.9  # fp32 multiply + add
PJ_PER_AC = 0.9  # fp32 add
# 7^2, 14^2, 28^2 tokens: square, so PVT-style layers can reshape them; longer sequences would make the report's
# softmax probe itself hold H x T^2 scores (T = 3136: ~0.5 GB for 12 heads). The benchmarks pass longer ones.
DEFAULT_LENGTHS = (49, 196, 784)


def _is_signs(t: Any) -> bool:
    """All values in {-1, 0, +1} (and not all zero): a product with it is additions and sign flips only."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
        return False
    t = t.detach()
    return bool(((t == 1) | (t == -1) | (t == 0)).all()) and bool((t != 0).any())


def _linear(args: tuple, kwargs: dict, out: torch.Tensor) -> tuple[int, bool]:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    return out.numel() * w.shape[-1], _is_signs(w) or _is_signs(x)


def _conv(args: tuple, kwargs: dict, out: torch.Tensor) -> tuple[int, bool]:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    per_output = w.shape[1] * math.prod(w.shape[2:])  # (in / groups) x kernel
    return out.numel() * per_output, _is_signs(w) or _is_signs(x)


def _matmul(args: tuple, kwargs: dict, out: torch.Tensor) -> tuple[int, bool]:
    a, b = args[0], args[1]
    return out.numel() * a.shape[-1], _is_signs(a) or _is_signs(b)


def _einsum(args: tuple, kwargs: dict, out: torch.Tensor) -> tuple[int, bool]:
    eq = args[0].replace(" ", "")
    ops = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
    inputs, _, output = eq.partition("->")
    sizes: dict[str, int] = {}
    for spec, t in zip(inputs.split(","), ops):
        letters = spec.replace("...", "")
        sizes.update(zip(letters, t.shape[t.dim() - len(letters) :]))  # explicit letters are the trailing dims
    contracted = math.prod(sizes[c] for c in set(sizes) - set(output))
    return out.numel() * contracted, any(_is_signs(t) for t in ops)


def _sdpa(args: tuple, kwargs: dict, out: torch.Tensor) -> tuple[int, bool]:
    q, k = args[0], args[1] if len(args) > 1 else kwargs["key"]
    return out.numel() * k.shape[-2] + q.numel() // q.shape[-1] * k.shape[-2] * q.shape[-1], False


# What each intercepted function costs: (multiply-accumulates, has a +-1 operand), and its kind.
RULES: dict[Callable, tuple[str, Callable[[tuple, dict, torch.Tensor], tuple[int, bool]]]] = {
    F.linear: ("linear", _linear),
    F.conv1d: ("conv", _conv),
    F.conv2d: ("conv", _conv),
    torch.matmul: ("matmul", _matmul),
    torch.Tensor.matmul: ("matmul", _matmul),
    torch.Tensor.__matmul__: ("matmul", _matmul),
    torch.bmm: ("matmul", _matmul),
    torch.einsum: ("matmul", _einsum),
    F.scaled_dot_product_attention: ("matmul", _sdpa),  # scores (Nq x Nk x D) + weighted values (Nq x Nk x Dv)
}


@dataclass
class OpsCount:
    macs: dict[str, int] = field(default_factory=dict)  # by group: weights, attention_core, other_matmul
    acs: dict[str, int] = field(default_factory=dict)
    uncounted: int = 0  # products whose cost could not be read from the call

    def add(self, group: str, n: int, accumulate: bool) -> None:
        book = self.acs if accumulate else self.macs
        book[group] = book.get(group, 0) + n

    def to_dict(self) -> dict[str, Any]:
        groups = sorted(set(self.macs) | set(self.acs))
        macs, acs = sum(self.macs.values()), sum(self.acs.values())
        return {
            "macs": macs,
            "accumulations": acs,
            "energy_uj": (macs * PJ_PER_MAC + acs * PJ_PER_AC) / 1e6,
            "uncounted_products": self.uncounted,
            "by_group": {
                g: {
                    "macs": self.macs.get(g, 0),
                    "accumulations": self.acs.get(g, 0),
                    "energy_uj": (self.macs.get(g, 0) * PJ_PER_MAC + self.acs.get(g, 0) * PJ_PER_AC) / 1e6,
                }
                for g in groups
            },
        }


def _is_attention(m: nn.Module) -> bool:
    return type(m).__name__.endswith("Attention")


class _Counter(TorchFunctionMode):
    def __init__(self, count: OpsCount, running: list[nn.Module]):
        super().__init__()
        self.count, self.running = count, running  # the attention modules running now (outermost first)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = RULES.get(func)
        if rule is not None and isinstance(out, torch.Tensor):
            kind, cost = rule
            try:
                n, signs = cost(args, kwargs, out)  # the mode is inactive inside its own handler: not counted
            except (IndexError, KeyError, TypeError, ValueError):  # an unusual call form: say so, never fail
                self.count.uncounted += 1
                return out
            group = "weights" if kind in ("linear", "conv") else "attention_core" if self.running else "other_matmul"
            self.count.add(group, int(n), signs)
        return out


def count_ops(fn: Callable[[], Any], model: nn.Module) -> OpsCount:
    """Count the products executed by ``fn()`` (one forward of ``model``)."""
    count, running = OpsCount(), []
    attention = [(m, m) for m in model.modules() if _is_attention(m)]
    with module_stack(attention, running), torch.no_grad(), _Counter(count, running):
        fn()
    return count


def _first_attention(model: nn.Module) -> tuple[str, nn.Module] | None:
    outer = [(n, m) for n, m in model.named_modules() if _is_attention(m)]
    return outer[0] if outer else None


def _width(module: nn.Module) -> int:
    for m in module.modules():
        if hasattr(m, "in_features"):
            return int(m.in_features)
    raise ValueError(f"no projection layer found in {type(module).__name__}")


def _pvt_call(m: nn.Module, x: torch.Tensor) -> Any:
    side = math.isqrt(x.shape[1])
    return m(x, side, side)  # PVTv2 attention: (hidden_states, height, width)


# How to call one attention layer on T synthetic tokens: the first calling convention whose test matches.
PROBES: list[tuple[Callable[[nn.Module], bool], Callable[[nn.Module, torch.Tensor], Any]]] = [
    (lambda m: type(m).__name__.startswith("PvtV2"), _pvt_call),
    (lambda m: True, lambda m, x: m(x)),  # AttentionInterface modules: (hidden_states, attention_mask=None)
]


def attention_cost_curve(model: nn.Module, lengths: tuple[int, ...] = DEFAULT_LENGTHS) -> dict[str, Any]:
    """Counted cost of the model's first attention layer at each sequence length, and the growth exponent."""
    found = _first_attention(model)
    if found is None:
        return {"computed": False, "reason": "no attention module (class name ending in 'Attention')"}
    name, module = found
    was_training = model.training
    model.eval()
    call = next(fn for test, fn in PROBES if test(module))
    points = []
    try:
        width = _width(module)
        for t in lengths:
            x = torch.randn(1, t, width, generator=torch.Generator().manual_seed(t))
            try:
                count = count_ops(lambda x=x: call(module, x), module)
            except (TypeError, RuntimeError) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return {"computed": False, "reason": f"cannot call '{name}' on {t} synthetic tokens: {why}"}
            d = count.to_dict()
            core = d["by_group"].get("attention_core", {"macs": 0, "accumulations": 0, "energy_uj": 0.0})
            points.append(
                {"tokens": t, "total": {k: d[k] for k in ("macs", "accumulations", "energy_uj")}, "core": core}
            )
    except ValueError as exc:
        return {"computed": False, "reason": str(exc)}
    finally:
        model.train(was_training)
    return {"computed": True, "layer": name, "width": width, "points": points, "core_growth": _growth(points)}


def _growth(points: list[dict[str, Any]]) -> float | None:
    """Exponent k in cost ~ T^k between the two longest sequences (2: quadratic, 1: linear)."""
    if len(points) < 2:
        return None
    a, b = points[-2], points[-1]
    ca = a["core"]["macs"] + a["core"]["accumulations"]
    cb = b["core"]["macs"] + b["core"]["accumulations"]
    if not ca or not cb:
        return None
    return round(math.log(cb / ca) / math.log(b["tokens"] / a["tokens"]), 3)


def ops_summary(model: nn.Module, inputs: tuple[torch.Tensor, ...], lengths: tuple[int, ...] = DEFAULT_LENGTHS):
    """The report's ops proxy: the whole model at batch 1 on ``inputs``, and one attention layer vs T."""
    was_training = model.training
    model.eval()
    try:
        whole = count_ops(lambda: model(*inputs), model).to_dict()
    finally:
        model.train(was_training)
    return {
        "energy_model": "45 nm fp32: MAC 4.6 pJ (multiply 3.7 + add 0.9), accumulation 0.9 pJ (Horowitz 2014)",
        "batch": int(inputs[0].shape[0]) if inputs else 1,
        "model": whole,
        "attention_vs_length": attention_cost_curve(model, lengths),
    }
