"""The report's training section: what was trained, the outlier metrics and the attention entropy per layer before
and after (and its lowest value during training, when it was tracked)."""

from __future__ import annotations

from typing import Any

from .render import html_table, md_table

COLUMNS = ("attention_max_inf_norm", "attention_kurtosis", "ffn_max_inf_norm", "ffn_kurtosis")
LABELS = ("attn max inf-norm", "attn kurtosis", "FFN max inf-norm", "FFN kurtosis")


def training_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the outlier table (before / after retraining, then per layer after)."""
    train = report.get("train") or {}
    outliers = train.get("outliers") or {}
    after = outliers.get("after") or {}
    if not after.get("applicable"):
        return [], []
    before = outliers.get("before") or {}
    header = ["model", *LABELS]
    before_label = "original (teacher)" if outliers.get("before_is") == "teacher" else "before training (init)"
    rows = []
    for label, m in ((before_label, before), ("after training", after)):
        if m.get("applicable"):
            rows.append([label, *(f"{m[c]:.3g}" for c in COLUMNS)])
    for layer in after["layers"]:
        rows.append(
            [
                f"  {layer['layer']}",
                f"{layer['attention_inf_norm']:.3g}",
                f"{layer['attention_kurtosis']:.3g}",
                f"{layer['ffn_inf_norm']:.3g}",
                f"{layer['ffn_kurtosis']:.3g}",
            ]
        )
    return header, rows


def entropy_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the attention-entropy table: per layer before / after training, the lowest value of the
    training batches' entropy (and at which step), and ``log T``, the uniform ceiling."""
    train = report.get("train") or {}
    ent = train.get("entropy") or {}
    after, before = ent.get("after") or {}, ent.get("before") or {}
    if not after.get("applicable"):
        return [], []
    curve = train.get("entropy_curve") or []
    header = ["layer", "before training", "after training", "lowest during training (step)", "log T (uniform)"]
    rows = []
    before_layers = {r["layer"]: r["entropy"] for r in before.get("layers", [])}
    for i, layer in enumerate(after["layers"]):
        seen = [(h[i], step) for step, h in curve if i < len(h) and h[i] == h[i]]  # h == h: not NaN
        low = f"{min(seen)[0]:.3f} ({min(seen)[1]})" if seen else "-"
        rows.append(
            [
                layer["layer"],
                f"{before_layers.get(layer['layer'], float('nan')):.3f}",
                f"{layer['entropy']:.3f}",
                low,
                f"{layer['uniform']:.3f}",
            ]
        )
    rows.append(["mean over layers", f"{before.get('mean', float('nan')):.3f}", f"{after['mean']:.3f}", "", ""])
    return header, rows


def markdown_entropy(report: dict[str, Any]) -> list[str]:
    header, rows = entropy_rows(report)
    if not header:
        return []
    after = report["train"]["entropy"]["after"]
    return [
        "## Attention entropy per layer",
        "",
        f"Mean of -Σ p log p over heads and query rows of each softmax attention, on {after['samples']} validation "
        "samples; during training, on the training batch of the loss curve's steps. Collapse: far below log T.",
        "",
        *md_table(header, rows),
        "",
    ]


def training_summary(report: dict[str, Any]) -> str | None:
    t = report.get("train")
    if not t:
        return None
    resumed = f", resumed at step {t['resumed_at']}" if t.get("resumed_at") is not None else ""
    return (
        f"Training ({t.get('objective', 'labels')}): {t['steps']} steps on {t['data']} in {t['seconds']:.0f} s, "
        f"final loss {t['final_loss']:.3f}{resumed}"
    )


def markdown_training(report: dict[str, Any]) -> list[str]:
    header, rows = training_rows(report)
    if not header:
        return []
    after = report["train"]["outliers"]["after"]
    return [*_markdown_outliers(after, header, rows), *markdown_entropy(report)]


def _markdown_outliers(after: dict[str, Any], header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "## Outliers (attention and FFN outputs)",
        "",
        f"Measured with hooks on {after['samples']} validation samples ({after['batches']} batches): max inf-norm is "
        "the largest |x| over layers averaged over batches; kurtosis is averaged over batches and layers "
        "(3 for a Gaussian).",
        "",
        *md_table(header, rows),
        "",
    ]


def html_training(report: dict[str, Any]) -> str:

    header, rows = training_rows(report)
    if not header:
        return ""
    html = f"<h2>Outliers (attention and FFN outputs)</h2>{html_table(header, rows)}"
    e_header, e_rows = entropy_rows(report)
    if e_header:
        html += f"<h2>Attention entropy per layer</h2>{html_table(e_header, e_rows)}"
    return html
