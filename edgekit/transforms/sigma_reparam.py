"""σReparam (Zhai et al., 2023, SEED-METHODS section 6): ``W' = (γ / σ(W)) W`` on Linear layers, and its fold.

Attention entropy collapse (pathologically peaked attention, with unstable training) goes with a large spectral
norm of the attention logits; σReparam bounds every Linear's spectral norm by a learned scalar:

* ``σ(W)`` is tracked by ONE power-iteration step per training forward: ``v = W^T u / |W^T u|``,
  ``u = W v / |W v|`` (u, v buffers, no gradient), then ``σ = u^T W v`` with the gradient through W;
* ``γ`` is a learned scalar initialized at apply time to the estimate ``σ`` itself (after ``init_iterations``
  steps), so the function is unchanged at step 0 (the pipeline checks it: the transform is declared exact);
* in eval mode the buffers are not updated, so ``W'`` is a constant, and ``sigma_reparam_fold`` writes
  it into a plain ``nn.Linear`` (exact, checked like every fold).

Options of ``sigma_reparam``: ``layers`` (``all`` | ``attention`` | ``mlp``: every Linear, those inside the
attention blocks, or those of the transformer layers outside attention), ``pattern`` (a glob over module names,
ANDed with ``layers``) and ``init_iterations`` (power-iteration steps at apply time, default 50).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import RecipeError
from ..nn.scopes import inside, set_module
from . import NoOptions, TransformResult, register

LAYER_SETS = ("all", "attention", "mlp")


def _normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm().clamp_min(eps)


class SigmaReparamLinear(nn.Module):
    """``F.linear(x, (γ / σ) W, b)``; one power-iteration step per training-mode forward."""

    def __init__(self, linear: nn.Linear, init_iterations: int = 50):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        gen = torch.Generator().manual_seed(0)
        w = self.weight.detach()
        self.register_buffer("u", _normalize(torch.randn(self.out_features, generator=gen, dtype=w.dtype)))
        self.register_buffer("v", _normalize(torch.randn(self.in_features, generator=gen, dtype=w.dtype)))
        self.power_iteration(init_iterations)
        self.gamma = nn.Parameter(self.sigma().detach().clone())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    @torch.no_grad()
    def power_iteration(self, steps: int = 1) -> None:
        w = self.weight.detach()
        for _ in range(steps):
            self.v.copy_(_normalize(w.t() @ self.u))
            self.u.copy_(_normalize(w @ self.v))

    def sigma(self) -> torch.Tensor:
        """The spectral-norm estimate ``u^T W v`` (differentiable in W; u, v are constants)."""
        return torch.dot(self.u, self.weight @ self.v)

    def effective_weight(self) -> torch.Tensor:
        return self.weight * (self.gamma / self.sigma())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.power_iteration(1)
        return F.linear(x, self.effective_weight(), self.bias)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        lin.weight.copy_(self.effective_weight())
        if self.bias is not None:
            lin.bias.copy_(self.bias)
        return lin.to(self.weight.dtype)


def _scopes(model: nn.Module, layers: str) -> list[str] | None:
    """Module-name prefixes a Linear must be inside (None: anywhere), and the ones it must not be inside."""
    if layers == "all":
        return None
    from ..nn.sites import transformer_sites

    names = {id(m): n for n, m in model.named_modules()}
    sites = transformer_sites(model)
    if not sites:
        raise RecipeError(
            f"sigma_reparam: layers: {layers} needs transformer layers, and none was found in "
            f"{type(model).__name__}; use layers: all or a pattern"
        )
    return [names[id(s.attention if layers == "attention" else s.layer)] for s in sites]


def _inside(name: str, prefixes: list[str]) -> bool:
    return any(inside(name, p) for p in prefixes)


def select_linears(model: nn.Module, layers: str = "all", pattern: str | None = None) -> list[str]:
    """Names of the Linear layers σReparam applies to."""
    if layers not in LAYER_SETS:
        raise RecipeError(f"sigma_reparam: layers must be one of {LAYER_SETS}, got '{layers}'")
    scopes = _scopes(model, layers)
    attention = _scopes(model, "attention") if layers == "mlp" else []
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        if scopes is not None and not _inside(name, scopes):
            continue
        if layers == "mlp" and _inside(name, attention or []):
            continue
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        out.append(name)
    return out


@dataclass(frozen=True)
class SigmaReparamOptions:
    """``layers`` (one of :data:`LAYER_SETS`), ``pattern`` (a glob over module names, ANDed with ``layers``) and
    ``init_iterations`` (power-iteration steps at apply time, >= 1)."""

    layers: str = "all"
    pattern: str | None = None
    init_iterations: int = 50

    def __post_init__(self) -> None:
        if self.layers not in LAYER_SETS:
            raise ValueError(f"layers must be one of {LAYER_SETS}, got '{self.layers}'")
        if self.init_iterations < 1:
            raise ValueError(f"init_iterations must be an integer >= 1, got {self.init_iterations!r}")


@register(
    "sigma_reparam",
    phase="train",
    exact=True,  # γ starts at σ: the function is unchanged until training moves it (checked by the pipeline)
    description="σReparam: every chosen Linear as (γ / σ(W)) W, σ by one power-iteration step per training step",
    options=SigmaReparamOptions,
)
def sigma_reparam(model: nn.Module, options: SigmaReparamOptions) -> TransformResult:
    layers, pattern, iterations = options.layers, options.pattern, options.init_iterations
    names = select_linears(model, layers, pattern)
    if not names:
        raise RecipeError(
            f"sigma_reparam: no Linear layer of {type(model).__name__} matches layers: {layers}"
            + (f", pattern: '{pattern}'" if pattern else "")
            + "; loosen the selection"
        )
    for name in names:
        new = SigmaReparamLinear(model.get_submodule(name), iterations)
        new.train(model.training)
        set_module(model, name, new)
    return TransformResult(model, {"linears_reparameterized": len(names), "layers": layers})


@register(
    "sigma_reparam_fold",
    phase="deploy",
    exact=True,
    description="σReparam layers folded into plain Linear layers: W = (γ / σ) W with the stored σ",
)
def sigma_reparam_fold(model: nn.Module, options: NoOptions) -> TransformResult:
    names = [n for n, m in model.named_modules() if isinstance(m, SigmaReparamLinear)]
    if not names:
        raise RecipeError(
            "sigma_reparam_fold: the model has no σReparam layer; list sigma_reparam (a train-phase transform) "
            "before it in the recipe"
        )
    for name in names:
        set_module(model, name, model.get_submodule(name).folded())
    return TransformResult(model, {"linears_folded": len(names)})
