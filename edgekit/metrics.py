"""Accuracy metrics of an artifact against FP32 (and against the simulated-quantized model)."""

from __future__ import annotations

import numpy as np

# The default validation budget per metric: top-1 points lost, or 1 - cosine.
DEFAULT_BUDGET = {"top1": 1.0, "cosine": 0.02}


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(outputs.argmax(-1) == labels))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of samples whose top-1 class is the same in ``a`` and ``b``."""
    return float(100.0 * np.mean(a.argmax(-1) == b.argmax(-1)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean row-wise cosine similarity."""
    a64, b64 = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical)."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    return float("inf") if noise == 0 else float(10.0 * np.log10(max(signal, 1e-30) / noise))


def task_metric(metric: str, outputs: np.ndarray, fp32: np.ndarray, labels: np.ndarray | None) -> float:
    """The recipe's metric: top-1 % against labels, top-1 agreement % with FP32 (``agreement``), or mean cosine
    to the FP32 outputs."""
    if metric == "agreement":
        return agreement(outputs, fp32)
    return top1(outputs, labels) if metric == "top1" and labels is not None else cosine(outputs, fp32)


def compare(
    outputs: np.ndarray, fp32: np.ndarray, labels: np.ndarray | None, metric: str, sim: np.ndarray | None = None
) -> dict[str, float | None]:
    """All the numbers the report shows for one artifact."""
    res: dict[str, float | None] = {
        "metric": task_metric(metric, outputs, fp32, labels),
        "cosine_vs_fp32": cosine(outputs, fp32),
        "sqnr_db": sqnr_db(fp32, outputs),
        "max_abs_diff": float(np.max(np.abs(outputs.astype(np.float64) - fp32))),
        "agreement_vs_fp32": agreement(outputs, fp32) if metric == "top1" else None,
    }
    if sim is not None:
        res["agreement_vs_sim"] = agreement(outputs, sim) if metric == "top1" else None
        res["cosine_vs_sim"] = cosine(outputs, sim)
        res["sqnr_vs_sim_db"] = sqnr_db(sim, outputs)
    return res
