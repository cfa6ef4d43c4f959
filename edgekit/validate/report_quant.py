"""Report sections of the quantization stage: the nodes accuracy-aware quantization kept in FP32 and the per-node
divergence of failing targets (both optional; empty when the run has neither)."""

from __future__ import annotations

import html
from typing import Any

from .render import html_table, md_table

RANKING_SHOWN = 12


def _aa(report: dict[str, Any]) -> dict[str, Any] | None:
    return (report.get("calibration") or {}).get("accuracy_aware")


def quant_summary(report: dict[str, Any]) -> str | None:
    aa = _aa(report)
    if not aa:
        return None
    unit = aa.get("unit", "graph node")
    if not aa.get("needed"):
        return f"Accuracy-aware quantization: drop {aa['drop_before']:.4f} within {aa['max_drop']}; no {unit} reverted"
    state = "within" if aa["within"] else "still over"
    return (
        f"Accuracy-aware quantization ({aa['method']}): {len(aa['kept_fp32'])} of {aa['layers_quantized']} {unit}s "
        f"kept in FP32, drop on {aa['samples']} ranking samples {aa['drop_before']:.4f} -> {aa['drop_after']:.4f} "
        f"({state} {aa['max_drop']}), {aa['evaluations']} evaluations in {aa['seconds']:.0f} s"
    )


def _aa_rows(aa: dict[str, Any]) -> list[list[str]]:
    ranking = aa.get("ranking") or []
    shown = [r for i, r in enumerate(ranking) if i < RANKING_SHOWN or r["kept_fp32"]]
    return [
        [
            str(i + 1),
            r["layer"],
            f"{r['sensitivity']:+.4f}",
            f"{r['sqnr_sensitivity_db']:+.2f}",
            "FP32" if r["kept_fp32"] else "int8",
        ]
        for i, r in enumerate(shown)
    ]


AA_HEADERS = ["rank", "graph node", "sensitivity (metric)", "sensitivity (SQNR dB)", "kept as"]


def markdown_quant(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    aa = _aa(report)
    if aa and aa.get("needed"):
        out += [
            "## Accuracy-aware quantization",
            "",
            f"{quant_summary(report)}. Ranking data: {aa['data']}. Sensitivity = "
            + (
                "metric recovered when only this node is left in FP32"
                if aa["method"] == "drop-one"
                else "metric lost when only this node is quantized"
            )
            + "; these nodes are left unquantized (encodings.json meta.fp32_nodes), so every target runs them in "
            "float.",
            "",
            *md_table(AA_HEADERS, _aa_rows(aa)),
            "",
        ]
    for d in report.get("diagnosis") or []:
        out += ["## Where the accuracy goes (failing target)", "", *divergence_markdown(d), ""]
    return out


def html_quant(report: dict[str, Any]) -> str:
    esc = html.escape
    parts = []
    aa = _aa(report)
    if aa and aa.get("needed"):
        parts.append(
            f"<h2>Accuracy-aware quantization</h2><p>{esc(quant_summary(report) or '')}</p>"
            f"{html_table(AA_HEADERS, _aa_rows(aa))}"
        )
    for d in report.get("diagnosis") or []:
        rows, first = divergence_rows(d)
        classes = ["fail" if i == first else "" for i in range(len(rows))]
        parts.append(
            f"<h2>Per-node divergence: {esc(d['target'])} {esc(d['precision'])}</h2><p>{esc(d['verdict'])}.</p>"
            f"{html_table(DIVERGENCE_HEADERS, rows, classes)}"
        )
    return "".join(parts)


DIVERGENCE_HEADERS = ["#", "graph node", "int8", "SQNR vs simulated dB", "SQNR vs FP32 dB", "simulated vs FP32 dB"]


def divergence_rows(result: dict[str, Any]) -> tuple[list[list[str]], int | None]:
    """The table rows of every located node, in execution order, and the index of the first departure."""
    located = [r for r in result["layers"] if r["found"]]
    rows = [
        [
            str(i),
            r["layer"],
            "yes" if r["int8"] else "fp32",
            f"{r['sqnr_vs_sim_db']:.1f}",
            f"{r['sqnr_vs_fp32_db']:.1f}",
            f"{r['sim_sqnr_vs_fp32_db']:.1f}",
        ]
        for i, r in enumerate(located)
    ]
    first = next((i for i, r in enumerate(located) if r["layer"] == result["first_departure"]), None)
    return rows, first


def divergence_markdown(result: dict[str, Any]) -> list[str]:
    """The divergence table as Markdown, the first departing node marked, and the nodes not located."""
    rows, first = divergence_rows(result)
    if first is not None:
        rows[first][1] += " **<- first departure**"
    lines = [
        f"### Per-node divergence: {result['target']} {result['precision']} ({result['runtime']}, "
        f"{result['samples']} samples)",
        "",
        f"{result['verdict']}.",
        "",
        *md_table(DIVERGENCE_HEADERS, rows),
    ]
    missing = [r["layer"] for r in result["layers"] if not r["found"]]
    if missing:
        lines += ["", f"Not located in the runtime graph ({len(missing)}): {', '.join(missing[:10])}"]
    return lines
