"""The report's binarization section: ops/energy proxy (MACs vs accumulations, attention cost vs length) and
whether each artifact stores its 1-bit weights in 1 bit (lowered) or in float (simulated)."""

from __future__ import annotations

import html
from typing import Any

from .render import html_table, md_table

GROUP_LABEL = {"weights": "weight layers", "attention_core": "attention core", "other_matmul": "other products"}


def _m(n: int) -> str:
    return f"{n / 1e6:.2f}"


def ops_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the per-inference table and the attention-vs-length table."""
    ops = report.get("ops")
    if not ops:
        return []
    model = ops["model"]
    rows = [
        [GROUP_LABEL.get(g, g), _m(v["macs"]), _m(v["accumulations"]), f"{v['energy_uj']:.2f}"]
        for g, v in model["by_group"].items()
    ]
    rows.append(["total", _m(model["macs"]), _m(model["accumulations"]), f"{model['energy_uj']:.2f}"])
    tables = [
        (
            f"Ops proxy per inference (batch {ops['batch']}; {ops['energy_model']})",
            ["products", "M MACs", "M accumulations", "energy proxy µJ"],
            rows,
        )
    ]
    curve = ops.get("attention_vs_length") or {}
    if curve.get("computed"):
        growth = curve.get("core_growth")
        title = f"One attention layer (`{curve['layer']}`, width {curve['width']}) vs sequence length T" + (
            f"; attention core grows as T^{growth:g}" if growth is not None else ""
        )
        pts = [
            [
                str(p["tokens"]),
                _m(p["core"]["macs"]),
                _m(p["core"]["accumulations"]),
                f"{p['core']['energy_uj']:.2f}",
                _m(p["total"]["macs"]),
                _m(p["total"]["accumulations"]),
                f"{p['total']['energy_uj']:.2f}",
            ]
            for p in curve["points"]
        ]
        header = ["T", "core M MACs", "core M acc.", "core µJ", "layer M MACs", "layer M acc.", "layer µJ"]
        tables.append((title, header, pts))
    return tables


def binary_weight_table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]] | None:
    """Per artifact: are its 1-bit weights stored in 1 bit (lowered) or in float (simulated), and the size."""
    rows = [
        [
            r["target"],
            r["precision"],
            r["binary_weights"]["mode"],
            f"{r['binary_weights']['lowered']} / {r['binary_weights']['layers']}",
            r["binary_weights"]["format"],
            f"{r['size_mb']:.2f}" if r.get("size_mb") is not None else "-",
        ]
        for r in report["rows"]
        if r.get("binary_weights")
    ]
    if not rows:
        return None
    return "1-bit weights per target", ["target", "precision", "1-bit weights", "layers", "stored as", "size MB"], rows


def markdown_ops(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    binary = binary_weight_table(report)
    for title, header, rows in [*ops_tables(report), *([binary] if binary else [])]:
        out += [f"### {title}", "", *md_table(header, rows), ""]
    curve = (report.get("ops") or {}).get("attention_vs_length") or {}
    if curve and not curve.get("computed"):
        out += [f"Attention cost vs length not computed: {curve.get('reason')}", ""]
    title = "## Ops / energy proxy (counted from one traced forward; not a measurement) and 1-bit weights"
    return [title, "", *out] if out else []


def html_ops(report: dict[str, Any]) -> str:
    esc = html.escape
    parts = []
    binary = binary_weight_table(report)
    for title, header, rows in [*ops_tables(report), *([binary] if binary else [])]:
        parts.append(f"<h3>{esc(title)}</h3>{html_table(header, rows)}")
    return f"<h2>Ops / energy proxy and 1-bit weights</h2>{''.join(parts)}" if parts else ""
