"""Mergeable validation statistics: a validation set split into shards, each scored where it runs, the scores
merged into exactly the numbers :func:`edgekit.metrics.compare` gives on the whole set.

Every metric of a report row is a sum or a maximum over samples, so a shard keeps sums, not means: top-1 correct
and agreement counts, cosine sums, signal and noise energy (SQNR), the max |diff|. Merging is addition (max for
the max), so shards can be scored in any order, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class ShardStats:
    n: int = 0
    correct: int = 0  # top-1 vs labels
    labelled: bool = False
    agree_fp32: int = 0
    cos_fp32: float = 0.0
    signal: float = 0.0  # sum of fp32^2
    noise: float = 0.0  # sum of (fp32 - out)^2
    max_abs: float = 0.0
    has_sim: bool = False
    agree_sim: int = 0
    cos_sim: float = 0.0
    sim_signal: float = 0.0
    sim_noise: float = 0.0

    def merge(self, other: ShardStats) -> ShardStats:
        out = ShardStats()
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "max_abs":
                value = max(a, b)
            elif isinstance(a, bool):
                if self.n and other.n and a != b:
                    raise ValueError(f"shards disagree on '{f.name}' (labels or simulated outputs on some shards only)")
                value = a or b
            else:
                value = a + b
            setattr(out, f.name, value)
        return out

    def compare(self, metric: str) -> dict[str, float | None]:
        """The same keys and values as ``metrics.compare`` on the whole set."""
        if self.n == 0:
            raise ValueError("no samples were scored")
        cos = self.cos_fp32 / self.n
        res: dict[str, float | None] = {
            "metric": 100.0 * self.correct / self.n if metric == "top1" and self.labelled else cos,
            "cosine_vs_fp32": cos,
            "sqnr_db": _sqnr(self.signal, self.noise),
            "max_abs_diff": self.max_abs,
            "agreement_vs_fp32": 100.0 * self.agree_fp32 / self.n if metric == "top1" else None,
        }
        if self.has_sim:
            res["agreement_vs_sim"] = 100.0 * self.agree_sim / self.n if metric == "top1" else None
            res["cosine_vs_sim"] = self.cos_sim / self.n
            res["sqnr_vs_sim_db"] = _sqnr(self.sim_signal, self.sim_noise)
        return res


def _sqnr(signal: float, noise: float) -> float:
    return float("inf") if noise == 0 else float(10.0 * np.log10(max(signal, 1e-30) / noise))


def _cos_sum(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float(np.sum((a64 * b64).sum(1) / np.maximum(den, 1e-12)))


def _energy(ref: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    r = ref.astype(np.float64)
    return float(np.sum(r**2)), float(np.sum((r - test.astype(np.float64)) ** 2))


def shard_stats(
    outputs: np.ndarray, fp32: np.ndarray, labels: np.ndarray | None = None, sim: np.ndarray | None = None
) -> ShardStats:
    """The sums of one shard: an artifact's ``outputs`` against the FP32 reference (and labels, simulated INT8)."""
    s = ShardStats(n=len(outputs), labelled=labels is not None, has_sim=sim is not None)
    top = outputs.argmax(-1)
    if labels is not None:
        s.correct = int(np.sum(top == labels))
    s.agree_fp32 = int(np.sum(top == fp32.argmax(-1)))
    s.cos_fp32 = _cos_sum(outputs, fp32)
    s.signal, s.noise = _energy(fp32, outputs)
    s.max_abs = float(np.max(np.abs(outputs.astype(np.float64) - fp32))) if len(outputs) else 0.0
    if sim is not None:
        s.agree_sim = int(np.sum(top == sim.argmax(-1)))
        s.cos_sim = _cos_sum(outputs, sim)
        s.sim_signal, s.sim_noise = _energy(sim, outputs)
    return s


def merge_all(stats: list[ShardStats]) -> ShardStats:
    out = ShardStats()
    for s in stats:
        out = out.merge(s)
    return out
