"""Outlier metrics (Bondarenko et al., 2023): max infinity-norm and kurtosis of attention and FFN outputs.

Collected with forward hooks on a data sample. Per batch and per layer: the infinity norm (max |x|) and the
kurtosis of all values of the output tensor (Pearson, ``E[(x - mu)^4] / sigma^4``; 3 for a Gaussian). The
summary follows the paper: ``max_inf_norm`` is the largest per-layer infinity norm, averaged over batches;
``kurtosis`` is the per-layer kurtosis averaged over batches and then over layers. *Attention output* is the
attention block's output (HF's grouping: ViT's ``ViTAttention``, BERT's ``BertAttention``); *FFN output* is the
transformer layer's output (the residual stream after the FFN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DataSet
from ..nn.capture import on_outputs
from ..nn.sites import first_tensor, transformer_sites


def _stats(x: torch.Tensor) -> tuple[float, float]:
    x = x.detach().double().flatten()
    mu, var = x.mean(), x.var(unbiased=False)
    kurt = float(((x - mu) ** 4).mean() / var.clamp_min(1e-24) ** 2)
    return float(x.abs().max()), kurt


def run_batches(model: nn.Module, input_names: list[str], data: DataSet, batch_size: int, max_batches: int) -> int:
    """Run at most ``max_batches`` batches of ``data`` through ``model`` in eval mode without gradients (the
    model's mode is restored after); returns how many ran. Measurements hook into the forward passes."""
    was_training = model.training
    model.eval()
    n = 0
    try:
        with torch.no_grad():
            for feeds, _ in data.batches(batch_size):
                model(*[torch.from_numpy(feeds[k]) for k in input_names])
                n += 1
                if n >= max_batches:
                    break
    finally:
        model.train(was_training)
    return n


def outlier_metrics(
    model: nn.Module, input_names: list[str], data: DataSet, batch_size: int = 32, max_batches: int = 16
) -> dict[str, Any]:
    """Run ``data`` (at most ``max_batches`` batches) through ``model`` and summarize its outliers."""
    sites = transformer_sites(model)
    if not sites:
        return {"applicable": False, "reason": "no transformer attention layers found"}
    records: dict[tuple[int, str], list[tuple[float, float]]] = {}

    def record(key: tuple[int, str], out: Any) -> None:
        records.setdefault(key, []).append(_stats(first_tensor(out)))  # type: ignore[arg-type]

    hooked = [((i, kind), m) for i, s in enumerate(sites) for kind, m in (("attention", s.attention), ("ffn", s.layer))]
    with on_outputs(hooked, record):
        n = run_batches(model, input_names, data, batch_size, max_batches)

    def layer_records(i: int, kind: str) -> list[tuple[float, float]]:
        return records.get((i, kind), [(np.nan, np.nan)] * n)  # NaN for a hook that never fired

    layers = []
    for i, site in enumerate(sites):
        row: dict[str, Any] = {"layer": site.name}
        for kind in ("attention", "ffn"):
            values = np.array(layer_records(i, kind))
            row[f"{kind}_inf_norm"] = float(values[:, 0].mean())
            row[f"{kind}_kurtosis"] = float(values[:, 1].mean())
        layers.append(row)
    summary: dict[str, Any] = {"applicable": True, "batches": n, "samples": min(len(data), n * batch_size)}
    for kind in ("attention", "ffn"):
        per_batch_max = np.max([[s[0] for s in layer_records(i, kind)] for i in range(len(sites))], axis=0)
        summary[f"{kind}_max_inf_norm"] = float(per_batch_max.mean())
        summary[f"{kind}_kurtosis"] = float(np.mean([r[f"{kind}_kurtosis"] for r in layers]))
    summary["layers"] = layers
    return summary
