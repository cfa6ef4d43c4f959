"""Attention entropy per layer (Zhai et al., 2023): the quantity whose collapse σReparam prevents.

For one attention layer: the mean, over samples, heads and query rows, of ``-sum_j p_j log p_j`` of the
softmax attention row ``p`` (natural log; ``log T`` for a uniform row over T keys, 0 for a one-hot row).

Collected without knowing the model: forward hooks mark which attention block (``transformer_sites``) is
running, and a torch-function mode reads every softmax over the last dimension computed inside it (HF eager
attention, edgekit's own attention, clipped softmax before its clip). A layer whose attention forms no softmax
(EcoFormer's hashed linear attention) has no entropy (NaN).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..data import DataSet
from ..nn.capture import module_stack
from ..nn.sites import transformer_sites
from .outliers import run_batches


def row_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` over the last dimension (0 log 0 = 0)."""
    p = p.detach().double()
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)


def _softmax_dim(args: tuple, kwargs: dict) -> Any:
    return kwargs.get("dim", args[1] if len(args) > 1 else None)


class EntropyRecorder:
    """Per-layer running mean of attention-row entropy while :meth:`recording` is active."""

    def __init__(self, model: nn.Module):
        self.sites = transformer_sites(model)
        self.names = [s.name for s in self.sites]
        self._sum = np.zeros(len(self.sites))
        self._count = np.zeros(len(self.sites))
        self._keys = np.zeros(len(self.sites))  # T of the last row seen: log T is the uniform ceiling

    def reset(self) -> None:
        self._sum[:], self._count[:] = 0.0, 0.0

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        stack: list[int] = []  # the running attention blocks' site indices
        recorder = self

        class Spy(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if stack and getattr(func, "__name__", "") == "softmax" and isinstance(out, torch.Tensor):
                    dim = _softmax_dim(args, kwargs)
                    if dim in (-1, out.dim() - 1):
                        with torch.no_grad():
                            h = row_entropy(out)
                        i = stack[-1]
                        recorder._sum[i] += float(h.sum())
                        recorder._count[i] += h.numel()
                        recorder._keys[i] = out.shape[-1]
                return out

        with module_stack([(i, site.attention) for i, site in enumerate(self.sites)], stack), Spy():
            yield

    def layer_means(self) -> list[float]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return [float(x) for x in np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)]

    def summary(self) -> dict[str, Any]:
        means = self.layer_means()
        layers = [
            {"layer": n, "entropy": m, "uniform": math.log(k) if k > 0 else float("nan")}
            for n, m, k in zip(self.names, means, self._keys, strict=True)
        ]
        finite = [m for m in means if not math.isnan(m)]
        return {
            "applicable": bool(finite),
            "mean": float(np.mean(finite)) if finite else float("nan"),
            "min": float(np.min(finite)) if finite else float("nan"),
            "layers": layers,
        }


def attention_entropy(
    model: nn.Module, input_names: list[str], data: DataSet, batch_size: int = 32, max_batches: int = 16
) -> dict[str, Any]:
    """Per-layer attention entropy of ``model`` on ``data`` (at most ``max_batches`` batches), in eval mode."""
    rec = EntropyRecorder(model)
    if not rec.sites:
        return {"applicable": False, "reason": "no transformer attention layers found"}
    with rec.recording():
        n = run_batches(model, input_names, data, batch_size, max_batches)
    out = rec.summary()
    if not out["applicable"]:
        out["reason"] = "no attention layer forms softmax probabilities (e.g. EcoFormer's linear attention)"
    return {**out, "batches": n, "samples": min(len(data), n * batch_size)}
