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


def device_plots(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """The multi-device report's plots: p50 (bar) and p90 (whisker) per artifact, one colour per device; and
    throughput per artifact per device. Returns {title: base64 PNG}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {(e["device"], e["artifact"]): e["result"] for e in report["entries"] if e.get("result")}
    devices, arts = report["devices"], report["artifacts"]
    if not cells:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    width = 0.8 / max(1, len(devices))
    out: dict[str, str] = {}
    for key, title, ylabel, fname in (
        ("p50_ms", "Latency per device (bar p50, whisker p90)", "latency (ms)", "device_latency.png"),
        ("throughput_per_s", "Throughput per device", "inferences / s", "device_throughput.png"),
    ):
        fig, ax = plt.subplots(figsize=(max(5.5, 1.2 * len(arts) * max(1, len(devices)) / 2), 3.8))
        for d, dev in enumerate(devices):
            xs = [i + (d - (len(devices) - 1) / 2) * width for i, a in enumerate(arts) if (dev, a) in cells]
            rs = [cells[(dev, a)] for a in arts if (dev, a) in cells]
            ys = [r.get(key) or 0.0 for r in rs]
            err = None
            if key == "p50_ms":
                err = [[0.0] * len(rs), [max(0.0, (r.get("p90_ms") or y) - y) for r, y in zip(rs, ys)]]
            ax.bar(xs, ys, width=width, yerr=err, capsize=3, label=dev)
        ax.set_xticks(list(range(len(arts))), arts, fontsize=8, rotation=20)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7)
        fig.tight_layout()
        out[title] = _save(fig, folder / fname)
        plt.close(fig)
    return out


def sweep_plots(rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
    """The sweep report's plots: p50 per finished artifact (one colour per target), and metric change vs FP32
    against p50. Returns {title: base64 PNG}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.get("p50_ms")]
    if not timed:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    targets = sorted({r["target"] for r in timed})
    colours = {t: f"C{i % 10}" for i, t in enumerate(targets)}

    fig, ax = plt.subplots(figsize=(max(5.5, 0.5 * len(timed)), 3.8))
    ax.bar(range(len(timed)), [r["p50_ms"] for r in timed], color=[colours[r["target"]] for r in timed])
    labels = [
        f"{r['model']}\n{r['target']} {r['precision']}" + (f"\n{r['device']}" if r.get("device") else "") for r in timed
    ]
    ax.set_xticks(list(range(len(timed))), labels, fontsize=6, rotation=60, ha="right")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("Latency per job")
    fig.tight_layout()
    out["latency per job"] = _save(fig, folder / "sweep_latency.png")
    plt.close(fig)

    scored = [r for r in timed if r.get("delta") is not None]
    if scored:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for t in targets:
            pts = [r for r in scored if r["target"] == t]
            ax.scatter([r["p50_ms"] for r in pts], [r["delta"] for r in pts], s=30, color=colours[t], label=t)
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("p50 latency (ms)")
        ax.set_ylabel("metric change vs FP32 PyTorch")
        ax.set_title("Metric change vs latency")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["metric change vs latency"] = _save(fig, folder / "sweep_delta_vs_latency.png")
        plt.close(fig)
    return out
