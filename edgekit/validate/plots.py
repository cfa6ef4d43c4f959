"""Report plots (matplotlib, headless): latency per artifact, and accuracy vs latency."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any


def make_plots(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """Write PNGs into ``folder``; return {title: base64 PNG} for embedding in the HTML report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r.get("latency")]
    if not rows:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    labels = [f"{r['target']}\n{r['precision']}" for r in rows]
    p50 = [r["latency"]["p50_ms"] for r in rows]
    p99 = [r["latency"]["p99_ms"] for r in rows]
    out: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows)), 3.6))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("latency (ms)")
    b = report.get("benchmark", {})
    ax.set_title(f"Latency, batch {b.get('batch_size', 1)}, {b.get('threads', '?')} threads")
    ax.legend()
    fig.tight_layout()
    out["latency"] = _save(fig, folder / "latency.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in rows:
        acc = (r.get("accuracy") or {}).get("metric")
        if acc is None:
            continue
        ax.scatter(r["latency"]["p50_ms"], acc, s=40)
        ax.annotate(
            f"{r['target']} {r['precision']}",
            (r["latency"]["p50_ms"], acc),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.axhline(report["reference"]["fp32_torch"], color="grey", linestyle="--", linewidth=1, label="FP32 PyTorch")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("top-1 %" if report["metric"] == "top1" else "cosine vs FP32")
    ax.set_title("Accuracy vs latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["accuracy vs latency"] = _save(fig, folder / "accuracy_vs_latency.png")
    plt.close(fig)
    return out


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=110)
    return base64.b64encode(path.read_bytes()).decode()
