"""The report's training section: what was trained, and the outlier metrics before and after."""

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
    return f"<h2>Outliers (attention and FFN outputs)</h2>{html_table(header, rows)}"
