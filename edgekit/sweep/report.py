"""The merged sweep report: one row per job x artifact (model, target, precision, device: status, metric and its
change vs FP32, p50, speedup, size), as sweep.json, sweep.md and sweep.html (with plots), rewritten as jobs finish.

Rows come from each job's result (the one the worker returned, saved under DIR/jobs/); a job that raised is one
``error`` row with its one-line error and the path of its log; a job not finished yet is a ``pending`` row.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..validate.render import html_figures, html_table, md_table
from ..validate.report import METRIC_LABEL, STYLE, _delta, _fmt
from .jobs import ERROR, Job

FORMAT = "edgekit-sweep/1"
HEADER = [
    "model",
    "target",
    "precision",
    "device",
    "status",
    "metric",
    "value",
    "Δ vs FP32",
    "p50 ms",
    "speedup",
    "size MB",
]
COMPARED = ("model", "target", "precision", "device", "status", "metric", "value", "delta")  # not timings


def sweep_rows(jobs: list[Job], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for job in jobs:
        res = results.get(job.id)
        cell = job.cell()
        base = {"job": job.id, "model": job.model, "device": cell["device"], "log": f"logs/{job.id}.log"}
        if res is None or res.get("status") == ERROR:
            status = "pending" if res is None else ERROR
            note = None if res is None else res.get("error")
            rows.append({**base, "target": job.target, "precision": job.precision, "status": status, "note": note})
            continue
        for r in res["rows"]:
            acc, lat = r.get("accuracy") or {}, r.get("latency") or {}
            rows.append(
                {
                    **base,
                    "target": r["target"],
                    "precision": r["precision"],
                    "status": r["status"],
                    "metric": res["metric"],
                    "value": acc.get("metric"),
                    "fp32_torch": res["reference"]["fp32_torch"],
                    "delta": r.get("delta"),
                    "p50_ms": lat.get("p50_ms"),
                    "p99_ms": lat.get("p99_ms"),
                    "latency_note": r.get("latency_note"),
                    "speedup": r.get("speedup"),
                    "size_mb": r.get("size_mb"),
                    "note": "; ".join(r.get("notes") or []) or r.get("error"),
                    "seconds": res.get("seconds"),
                    "host": res.get("host"),
                }
            )
    _cross_job_speedups(rows)
    return rows


def _cross_job_speedups(rows: list[dict[str, Any]]) -> None:
    """A job with one precision has no FP32 of its own: speedup is against the FP32 row of the same model,
    target and device from another job of the sweep."""
    fp32 = {
        (r["model"], r["target"], r["device"]): r["p50_ms"]
        for r in rows
        if r["precision"] == "fp32" and r.get("p50_ms")
    }
    for r in rows:
        base = fp32.get((r["model"], r["target"], r["device"]))
        if r.get("speedup") is None and r.get("p50_ms") and base:
            r["speedup"] = base / r["p50_ms"]


def cells(row: dict[str, Any]) -> list[str]:
    metric = row.get("metric")
    digits = 2 if metric in (None, "top1") else 4
    lat = row.get("p50_ms")
    return [
        row["model"],
        row.get("target") or "(recipe)",
        row.get("precision") or "(recipe)",
        row.get("device") or "-",
        row["status"],
        METRIC_LABEL.get(metric, "-") if metric else "-",
        _fmt(row.get("value"), digits),
        _delta(row.get("delta"), metric or "top1"),
        _fmt(lat, 3) if lat is not None else (row.get("latency_note") or "-"),
        (_fmt(row["speedup"]) + "x") if row.get("speedup") else "-",
        _fmt(row.get("size_mb")),
    ]


def summary(rows: list[dict[str, Any]], jobs: list[Job], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    states = Counter("pending" if j.id not in results else results[j.id]["status"] for j in jobs)
    return {"jobs": len(jobs), **states, "rows": dict(Counter(r["status"] for r in rows))}


def write(out: Path, name: str, executor: str, jobs: list[Job], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rewrite DIR/sweep.{json,md,html} (and plots/) from the results so far; returns the JSON document."""
    rows = sweep_rows(jobs, results)
    doc = {
        "format": FORMAT,
        "name": name,
        "executor": executor,
        "summary": summary(rows, jobs, results),
        "rows": rows,
    }
    write_atomic(out / "sweep.json", json.dumps(doc, indent=1, default=str))
    write_atomic(out / "sweep.md", markdown(doc))
    from ..validate.plots import sweep_plots

    write_atomic(out / "sweep.html", render_html(doc, sweep_plots(rows, out / "plots")))
    return doc


def write_atomic(path: Path, text: str) -> None:
    """Temp file + rename: a reader (or a stop) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = [f"{s.get(k, 0)} {k}" for k in ("done", "error", "pending") if s.get(k)]
    return f"{s['jobs']} jobs ({', '.join(parts) or 'none'}), executor {doc['executor']}"


def markdown(doc: dict[str, Any]) -> str:
    rows = doc["rows"]
    md = [f"# edgekit sweep: {doc['name']}", "", f"- {_summary_line(doc)}", "", *md_table(HEADER, map(cells, rows))]
    notes = [r for r in rows if r.get("note")]
    if notes:
        md += ["", "## Notes", ""]
        md += [
            f"- {r['model']} {r.get('target') or ''} {r.get('precision') or ''}: {r['note']} ({r['log']})"
            for r in notes
        ]
    return "\n".join(md) + "\n"


def render_html(doc: dict[str, Any], images: dict[str, str]) -> str:
    esc = html.escape
    rows = doc["rows"]
    table = html_table(HEADER, map(cells, rows), [r["status"] for r in rows])
    notes = "".join(
        f"<li>{esc(r['model'])} {esc(r.get('target') or '')} {esc(r.get('precision') or '')}: {esc(r['note'])} "
        f"(<a href='{esc(r['log'])}'>log</a>)</li>"
        for r in rows
        if r.get("note")
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit sweep: {esc(doc['name'])}</title>"
        f"<style>{STYLE}</style></head><body><h1>edgekit sweep: {esc(doc['name'])}</h1>"
        f"<p>{esc(_summary_line(doc))}</p>{table}{html_figures(images)}"
        f"{'<h2>Notes</h2><ul>' + notes + '</ul>' if notes else ''}</body></html>"
    )
