"""The multi-device report: every (device, artifact) entry in one table, p50 per artifact per device, plots.

Entries come from ``edgekit bench DIR --device ...`` (DIR/devices/*.json), from a run's own local latency,
and from ingested outputs of the standard tools (``edgekit report --ingest FILE``); all carry an
``edgekit-bench/1`` record, so the tables do not care who measured.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..status import DeviceStatus
from .render import html_figures, html_table, md_table
from .report import STYLE, _fmt
from .run_report import read_report

SCHEMA = "edgekit-device-report/1"
HEADERS = [
    "device",
    "artifact",
    "runtime",
    "tool",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "std ms",
    "throughput /s",
    "load ms",
    "peak RSS MB",
    "runs",
    "on-device accuracy",
]


def merge(entries: list[dict[str, Any]], sources: list[str] | None = None) -> dict[str, Any]:
    """One report; a later entry for the same (device, artifact) replaces an earlier one."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        latest[(e["device"], e["artifact"])] = e
    merged = list(latest.values())
    return {
        "schema": SCHEMA,
        "sources": sources or [],
        "devices": list(dict.fromkeys(e["device"] for e in merged)),
        "artifacts": list(dict.fromkeys(e["artifact"] for e in merged)),
        "entries": merged,
    }


def ingested_entry(record: dict[str, Any], device: str) -> dict[str, Any]:
    return {
        "device": device,
        "artifact": record["artifact"],
        "target": record["target"],
        "precision": record["precision"],
        "quantizer": None,
        "status": DeviceStatus.MEASURED,
        "note": f"ingested from {record['tool']} output",
        "result": record,
    }


def run_entries(run: Path, prefix: str = "") -> list[dict[str, Any]]:
    """A run directory's device results, plus its own local latency (unless a device run replaced it).
    ``prefix`` names the artifacts when several runs are merged ("vit/onnx/fp32")."""
    from .device_results import load_saved

    entries = [{**e, "artifact": prefix + e["artifact"]} for e in load_saved(run / "devices")]
    if not any(e["device"] == "local" for e in entries) and (run / "report.json").is_file():
        for row in read_report(run).get("rows", []):
            if row.get("latency") and row.get("artifact"):
                entries.append(
                    {
                        "device": "local",
                        "artifact": prefix + row["artifact"],
                        "target": row["target"],
                        "precision": row["precision"],
                        "quantizer": row.get("quantizer"),
                        "status": DeviceStatus.MEASURED,
                        "note": "the run's own latency measurement",
                        "result": {**row["latency"], "artifact": prefix + row["artifact"]},
                    }
                )
    return entries


def _accuracy(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "-"
    parts = [f"cos {acc['cosine_mean']:.4f}"]
    if acc.get("agreement_pct") is not None:
        parts.append(f"agree {acc['agreement_pct']:.1f}%")
    if acc.get("top1_pct") is not None:
        parts.append(f"top-1 {acc['top1_pct']:.1f}%")
    return ", ".join(parts) + f" (n={acc['samples']})"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for e in report["entries"]:
        r = e.get("result")
        if r is None:
            rows.append([e["device"], e["artifact"], "-", "-", e["status"], *["-"] * (len(HEADERS) - 5)])
            continue
        rows.append(
            [
                e["device"],
                e["artifact"],
                f"{r.get('runtime') or '-'} {str(r.get('runtime_version') or '').split('-')[0]}".strip(),
                r.get("tool") or "-",
                *(_fmt(r.get(k), 3) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms")),
                _fmt(r.get("throughput_per_s"), 1),
                _fmt(r.get("load_ms"), 1),
                _fmt(r.get("peak_rss_mb"), 1),
                _fmt(r.get("iterations")),
                _accuracy(r.get("accuracy")),
            ]
        )
    return rows


def pivot(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """p50 ms per artifact (rows) per device (columns); the status where a device did not measure it."""
    cells = {(e["device"], e["artifact"]): e for e in report["entries"]}
    rows = []
    for art in report["artifacts"]:
        row = [art]
        for dev in report["devices"]:
            e = cells.get((dev, art))
            row.append("-" if e is None else (_fmt(e["result"]["p50_ms"], 3) if e["result"] else e["status"]))
        rows.append(row)
    return ["artifact", *report["devices"]], rows


def device_info_lines(report: dict[str, Any]) -> list[str]:
    out = []
    for dev in report["devices"]:
        info = next((e["result"]["device"] for e in report["entries"] if e["device"] == dev and e["result"]), None)
        if not info or not any(info.values()):
            continue
        parts = [" ".join(str(info[k]) for k in ("system", "release") if info.get(k))]
        parts.append(
            f"on {info.get('processor') or info.get('machine')}" if info.get("processor") or info.get("machine") else ""
        )
        parts.append(f"{info['cpu_count']} cores" if info.get("cpu_count") else "")
        parts.append(f"{info['memory_mb']:.0f} MB" if info.get("memory_mb") else "")
        parts.append(f"python {info['python']}" if info.get("python") else "")
        out.append(f"{dev}: " + ", ".join(p for p in parts if p))
    return out


def notes(report: dict[str, Any]) -> list[str]:
    return [
        f"{e['device']} {e['artifact']}: {e['status']}: {e['note']}"
        for e in report["entries"]
        if e["status"] != DeviceStatus.MEASURED
    ]


def markdown(report: dict[str, Any]) -> str:
    hdr, prow = pivot(report)
    md = ["# edgekit device report", "", *[f"- {s}" for s in device_info_lines(report)], ""]
    md += ["## p50 latency (ms) per device", "", *md_table(hdr, prow), ""]
    md += ["## Every device and artifact", "", *md_table(HEADERS, table_rows(report)), ""]
    if notes(report):
        md += ["## Not measured", "", *[f"- {n}" for n in notes(report)], ""]
    return "\n".join(md)


def render_html(report: dict[str, Any], images: dict[str, str]) -> str:
    esc = html.escape

    figs = html_figures(images)
    items = "".join(f"<li>{esc(s)}</li>" for s in device_info_lines(report))
    missing = "".join(f"<li>{esc(n)}</li>" for n in notes(report))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgekit device report</title>"
        f"<style>{STYLE}</style></head><body><h1>edgekit device report</h1><ul>{items}</ul>"
        f"<h2>p50 latency (ms) per device</h2>{html_table(*pivot(report))}{figs}"
        f"<h2>Every device and artifact</h2>{html_table(HEADERS, table_rows(report))}"
        f"{'<h2>Not measured</h2><ul>' + missing + '</ul>' if missing else ''}</body></html>"
    )


def write(report: dict[str, Any], out: Path) -> None:
    """report.json, report.md, report.html and plots/ in ``out``."""
    from .plots import device_plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(markdown(report))
    (out / "report.html").write_text(render_html(report, device_plots(report, out / "plots")))
