"""The run report: report.json (everything), report.md (one table a user reads at a glance), report.html."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..status import Status
from .render import html_figures, html_table, md_table
from .report_ops import html_ops, markdown_ops
from .report_outliers import html_training, markdown_training, training_summary
from .report_quant import html_quant, markdown_quant, quant_summary
from .run_report import REPORT_SCHEMA

METRIC_LABEL = {"top1": "top-1 %", "cosine": "cosine"}
STYLE = (  # shared with the device report (device_report.py)
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
    "tr.fail td,tr.error td{background:#fde2e2}figure{display:inline-block;margin:1em}"
    "img{max-width:520px}"
)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.{digits}f}"
    return str(v)


def _delta(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    return f"{v:+.2f}" if metric == "top1" else f"{v:+.4f}"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    metric = report["metric"]
    digits = 2 if metric == "top1" else 4
    rows = []
    for r in report["rows"]:
        acc, lat = r.get("accuracy") or {}, r.get("latency") or {}
        agree = acc.get("agreement_vs_fp32")
        rows.append(
            [
                r["target"],
                r["precision"] + (f" ({r['quantizer']})" if r.get("quantizer") else ""),
                r["status"],
                _fmt(r.get("size_mb")),
                _fmt(acc.get("metric"), digits),
                _delta(r.get("delta"), metric),
                _fmt(agree) if agree is not None else _fmt(acc.get("cosine_vs_fp32"), 4),
                _fmt(lat.get("p50_ms"), 3) if lat else r.get("latency_note", "not measured"),
                _fmt(lat.get("p99_ms"), 3) if lat else "-",
                (_fmt(r["speedup"]) + "x") if r.get("speedup") else "-",
            ]
        )
    return rows


def headers(report: dict[str, Any]) -> list[str]:
    metric = report["metric"]
    agree = "agree % vs FP32" if metric == "top1" else "cos vs FP32"
    return [
        "target",
        "precision",
        "status",
        "size MB",
        METRIC_LABEL[metric],
        "Δ vs FP32",
        agree,
        "p50 ms",
        "p99 ms",
        "speedup vs FP32",
    ]


def markdown_table(report: dict[str, Any]) -> str:
    return "\n".join(md_table(headers(report), table_rows(report)))


def text_table(report: dict[str, Any]) -> str:
    """Aligned plain-text table for the terminal."""
    rows = [headers(report), *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _counted(data: str, samples: int) -> str:
    """``digits/train (64 samples)``; a description that already counts its samples is not counted twice."""
    return data if "samples)" in data else f"{data} ({samples} samples)"


def _activations(c: dict) -> str:
    """The activation grid per profile, profiles on the same grid together (``int16 symmetric`` under 16x8), else
    the recipe's symmetry."""
    grids: dict[str, list[str]] = {}
    for name, p in (c.get("profiles") or {}).items():
        if p.get("activations"):
            grids.setdefault(p["activations"], []).append(name)
    if grids:
        return "activations " + "; ".join(f"{grid} ({', '.join(names)})" for grid, names in grids.items())
    return f"{'symmetric' if c.get('activation_symmetric') else 'asymmetric'} activations"


def summary_lines(report: dict[str, Any]) -> list[str]:
    ref = report["reference"]
    metric = report["metric"]
    lines = [
        f"Model: {report['model']['source']} ({report['model']['family']}, "
        f"{report['model']['parameters']:,} parameters)",
        f"Validation: {_counted(report['validation']['data'], report['validation']['samples'])}; "
        f"metric {METRIC_LABEL[metric]}, budget: drop <= {report['budget']}",
        f"FP32 PyTorch: {_fmt(ref['fp32_torch'], 2 if metric == 'top1' else 4)}",
    ]
    c = report.get("calibration") or {}
    if ref.get("sim_int8") is not None:
        profiles = list(c.get("profiles") or {})
        if profiles:  # edgekit's quantizer: one program per profile; the first is the report's reference
            more = f"; also profiles {', '.join(profiles[1:])}" if len(profiles) > 1 else ""
            source = f"edgekit's program, profile {profiles[0]}{more}"
        else:
            source = f"{c.get('producer', c.get('quantizer', 'the quantizer'))}'s PT2E program"
        lines.append(f"Simulated INT8 (PyTorch, {source}): {_fmt(ref['sim_int8'], 2 if metric == 'top1' else 4)}")
    if c:
        lines.append(
            f"Calibration: {_counted(c['data'], c['samples'])}, estimator {c['estimator']}, "
            f"{c['encodings']} tensors encoded, {_activations(c)}"
        )
    b = report.get("benchmark")
    if b:
        lines.append(
            f"Latency: batch {b['batch_size']}, {b['threads']} threads, {b['warmup']} warm-up + "
            f"{b['iterations']} timed runs, each artifact in its own process"
        )
    aa = quant_summary(report)
    if aa:
        lines.append(aa)
    lines.append(f"Transforms: {'; '.join(transform_line(t) for t in report['transforms']) or 'none'}")
    trained = training_summary(report)
    if trained:
        lines.append(trained)
    lines.append(f"Result: {'PASS' if report['passed'] else 'FAIL'}{_counts(report)}")
    return lines


def _counts(report: dict[str, Any]) -> str:
    """`` (1 error, 2 unsupported)``: the rows that are not an artifact within budget, by status."""
    counts: dict[str, int] = {}
    for r in report["rows"]:
        if r["status"] in (Status.FAIL, Status.ERROR, Status.UNSUPPORTED):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    words = [f"{n} {'over budget' if s == Status.FAIL else s}" for s, n in counts.items()]
    return f" ({', '.join(words)})" if words else ""


def problem_lines(report: dict[str, Any]) -> list[str]:
    """One line per artifact that was not built or not validated because a stage raised (or the converter
    cannot represent the model): what the terminal shows under the table."""
    return [
        f"{r['target']} {r['precision']}: {r['status']}: {(r.get('notes') or ['no reason recorded'])[-1]}"
        for r in report["rows"]
        if r["status"] in (Status.ERROR, Status.UNSUPPORTED)
    ]


def transform_line(t: dict[str, Any]) -> str:
    changed = ", ".join(f"{k} {v}" for k, v in t.get("changed", {}).items())
    exact = f"exact, max |diff| {t['max_abs_diff']:.1e}" if t.get("exact") else "lossy, measured by the rows below"
    params = f"params {t['parameters_before']:,} -> {t['parameters_after']:,}"
    return f"{t['name']} ({', '.join(x for x in (changed, params, exact) if x)})"


def notes_lines(report: dict[str, Any]) -> list[str]:
    out = []
    for r in report["rows"]:
        for n in [*r.get("notes", []), *([r["error"]] if r.get("error") else [])]:
            out.append(f"- {r['target']} {r['precision']}: {n}")
    return out


def write_reports(report: dict[str, Any], out: Path) -> None:
    report.setdefault("schema", REPORT_SCHEMA)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    md = [
        f"# edgekit report: {report['recipe']}",
        "",
        *[f"- {s}" for s in summary_lines(report)],
        "",
        markdown_table(report),
        "",
    ]
    md += markdown_training(report)
    md += markdown_quant(report)
    md += markdown_ops(report)
    notes = notes_lines(report)
    if notes:
        md += ["## Notes", "", *notes, ""]
    (out / "report.md").write_text("\n".join(md))
    from .plots import make_plots

    images = make_plots(report, out / "plots")
    (out / "report.html").write_text(render_html(report, images))


def render_html(report: dict[str, Any], images: dict[str, str]) -> str:
    esc = html.escape
    rows = table_rows(report)
    table = html_table(headers(report), rows, [r[2] for r in rows])  # the status column styles the row
    figs = html_figures(images)
    items = "".join(f"<li>{esc(s)}</li>" for s in summary_lines(report))
    notes = "".join(f"<li>{esc(n[2:])}</li>" for n in notes_lines(report))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit report: {esc(report['recipe'])}"
        f"</title><style>{STYLE}</style></head><body><h1>edgekit report: {esc(report['recipe'])}</h1>"
        f"<ul>{items}</ul>{table}{figs}{html_training(report)}"
        f"{html_quant(report)}{html_ops(report)}"
        f"{'<h2>Notes</h2><ul>' + notes + '</ul>' if notes else ''}</body></html>"
    )
