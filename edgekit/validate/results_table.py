"""docs/RESULTS.md from run directories: ``edgekit results runs/* --out docs/RESULTS.md``.

One table of the recipes (model, training, transforms, calibration, FP32 and simulated-INT8 metric, result), one
row per recipe x target x precision (metric, change vs FP32, budget, size, p50 latency, speedup vs that target's
FP32), and every row that is not ``ok`` with the reason the run recorded. Nothing is typed in by hand: every number
is read from the runs' report.json; reduced-mode runs (``NAME-reduced``) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..artifacts import write_file
from ..errors import OutputExistsError, RecipeError
from .render import md_table
from .report import METRIC_LABEL as METRIC
from .report import _delta, _fmt


def load_runs(dirs: list[Path]) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(dir, report, manifest) of every run directory, reduced-mode runs left out, sorted by recipe name."""
    runs = []
    for d in dirs:
        if not (d / "report.json").is_file():
            continue
        try:
            report = json.loads((d / "report.json").read_text())
            if not isinstance(report, dict) or "recipe" not in report or "rows" not in report:
                raise KeyError("recipe")
        except (ValueError, KeyError, TypeError) as exc:
            raise RecipeError(
                f"{d}/report.json is damaged ({type(exc).__name__}); rebuild that run or leave it out"
            ) from None
        if str(report.get("recipe", "")).endswith("-reduced"):
            continue
        manifest = json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").is_file() else {}
        runs.append((d, report, manifest))
    return sorted(runs, key=lambda r: r[1]["recipe"])


def _num(v: Any, metric: str | None = None, digits: int | None = None) -> str:
    """The report's number format: 2 digits for top-1 and sizes, 4 for cosine, or ``digits``."""
    return _fmt(
        float(v) if isinstance(v, int) else v, digits if digits is not None else (2 if metric in (None, "top1") else 4)
    )


def transforms_text(report: dict[str, Any]) -> str:
    names = [t["name"] for t in report.get("transforms") or []]
    aa = (report.get("calibration") or {}).get("accuracy_aware")
    if aa and aa.get("needed"):
        names.append(f"accuracy-aware ({len(aa['kept_fp32'])} layers FP32)")
    return ", ".join(names) or "-"


def recipe_rows(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> list[str]:
    hdr = [
        "recipe",
        "model",
        "parameters",
        "training",
        "transforms",
        "calibration",
        "validation",
        "metric",
        "FP32 PyTorch",
        "INT8 simulated",
        "budget",
        "result",
    ]
    rows = []
    for _, r, _ in runs:
        m = r["metric"]
        t = r.get("train")
        train = f"{t['steps']} steps ({t['epochs']} ep), {t['seconds']:.0f} s" if t else "-"
        c = r.get("calibration") or {}
        calib = f"{c.get('samples')} x {c.get('estimator')}" if c else "-"
        cells = [
            f"`{r['recipe']}`",
            r["model"]["family"],
            f"{r['model']['parameters']:,}",
            train,
            transforms_text(r),
            calib,
            f"{r['validation']['data']} ({r['validation']['samples']})",
            METRIC[m],
            _num(r["reference"]["fp32_torch"], m),
            _num(r["reference"].get("sim_int8"), m),
            str(r["budget"]),
            "PASS" if r["passed"] else "FAIL",
        ]
        rows.append(cells)
    return md_table(hdr, rows)


def artifact_rows(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> list[str]:
    hdr = [
        "recipe",
        "target",
        "precision",
        "status",
        "metric",
        "FP32 PyTorch (same samples)",
        "value",
        "Δ vs FP32",
        "size MB",
        "p50 ms",
        "speedup vs FP32",
        "samples",
    ]
    lines = []
    for _, r, _ in runs:
        m = r["metric"]
        for row in sorted(r["rows"], key=lambda x: (x["target"], x["precision"] != "fp32", x["precision"])):
            acc, lat = row.get("accuracy") or {}, row.get("latency") or {}
            prec = row["precision"] + (f" ({row['quantizer']})" if row.get("quantizer") else "")
            cells = [
                f"`{r['recipe']}`",
                row["target"],
                prec,
                row["status"],
                METRIC[m],
                _num(fp32_on_rows_samples(r, row), m),
                _num(acc.get("metric"), m),
                _delta(row.get("delta"), m),
                _num(row.get("size_mb")),
                _num(lat.get("p50_ms"), digits=3) if lat else row.get("latency_note", "-"),
                f"{row['speedup']:.2f}x" if row.get("speedup") else "-",
                str(row.get("samples", "-")),
            ]
            lines.append(cells)
    return md_table(hdr, lines)


def fp32_on_rows_samples(run: dict[str, Any], row: dict[str, Any]) -> float | None:
    """FP32 PyTorch on the samples this row was validated on: the run's reference, or for a row checked on a
    subset (CoreML's reference interpreter) the subset's own FP32 value (its metric minus its delta)."""
    metric, delta = (row.get("accuracy") or {}).get("metric"), row.get("delta")
    if metric is None or delta is None:
        return run["reference"]["fp32_torch"]
    return metric - delta


def failure_lines(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> list[str]:
    out = []
    for _, r, _ in runs:
        for row in r["rows"]:
            if row["status"] == "ok":
                continue
            why = "; ".join(row.get("notes") or []) or row.get("error") or "no reason recorded"
            if row["status"] == "fail":
                why = f"{_delta(row.get('delta'), r['metric'])} vs FP32 exceeds the budget {r['budget']}; {why}"
            out.append(f"- `{r['recipe']}` {row['target']} {row['precision']}: **{row['status']}**: {why}")
    return out


def render(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]], command: str) -> str:
    versions = next((m.get("versions") for _, _, m in runs if m.get("versions")), {})
    device = next(
        (row["latency"]["device"] for _, r, _ in runs for row in r["rows"] if (row.get("latency") or {}).get("device")),
        {},
    )
    bench = next((r["benchmark"] for _, r, _ in runs if r.get("benchmark")), None)
    lines = [
        "# Results: every shipped recipe, end to end",
        "",
        f"Generated by `{command}` from {len(runs)} run directories; do not edit by hand.",
        "",
        f"- Machine: {device.get('processor', '?')}, {device.get('cpu_count', '?')} cores, "
        f"{device.get('system', '?')} {device.get('machine', '')}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    if bench:
        lines.append(
            f"- Latency: batch {bench['batch_size']}, {bench['threads']} threads, {bench['warmup']} warm-up + "
            f"{bench['iterations']} timed runs, each artifact in its own process; p50 in ms; speedup = the target's "
            "FP32 p50 / this p50. `not measured here`: the runtime cannot run on this machine (see each note)."
        )
    lines += [
        "- Metric: top-1 % on labelled data (for the decoder: next-token top-1 on held-out text), or mean cosine "
        "to the FP32 PyTorch output; Δ is against FP32 PyTorch on the same samples (a row validated on fewer samples, "
        "see `samples`, is compared on those); the budget is the largest allowed drop.",
        "",
        "## Recipes",
        "",
        *recipe_rows(runs),
        "",
        "## Every target and precision",
        "",
        *artifact_rows(runs),
        "",
        "## Rows that are not ok, and why",
        "",
        *(failure_lines(runs) or ["None: every row of every run is within its budget."]),
        "",
    ]
    return "\n".join(lines)


def write_results(dirs: list[Path], out: Path, command: str, force: bool = False) -> int:
    """Read every run first, then write ``out`` atomically (never over an existing file without ``force``)."""
    if out.exists() and not force:
        raise OutputExistsError(
            f"output file '{out}' already exists; pass --force to replace it or choose another --out"
        )
    runs = load_runs(dirs)
    if not runs:
        raise RecipeError(
            f"no run directories (with report.json) among {[str(d) for d in dirs]}; run `edgekit run RECIPE` first"
        )
    write_file(out, render(runs, command), force=force)
    return len(runs)
