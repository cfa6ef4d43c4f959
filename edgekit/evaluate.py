"""Validation and benchmarking of compiled artifacts, and assembly of the report dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data import DataSet
from .errors import DeviceError, ModelError
from .isolate import Outcome, isolated
from .metrics import compare, task_metric
from .recipe import BenchSpec, Metric, Precision
from .status import Status, validated
from .targets.base import Artifact, Target
from .validate.latency import bench_local
from .validate.probe import probe_artifact
from .validate.run_report import Row

CLASSIFYING_TASKS = ("classification", "next-token")  # outputs are class logits: top-1 when labelled


def resolve_metric(metric: Metric, task: str, data: DataSet) -> str:
    if metric is Metric.AUTO:
        return "top1" if task in CLASSIFYING_TASKS and data.labels is not None else "cosine"
    if metric is Metric.TOP1 and data.labels is None:
        raise ModelError(f"metric top1 needs labelled validation data; '{data.description}' has no labels")
    return metric.value


def predict_artifact(
    target: Target, art: Artifact, data: DataSet, batch_size: int, threads: int, progress: bool = True
) -> np.ndarray:
    session = target.load(art, threads)
    outs = []
    n = -(-len(data) // batch_size)
    for feeds, _ in tqdm(
        data.batches(batch_size),
        total=n,
        desc=f"validate {art.target} {art.precision.value}",
        leave=False,
        disable=None if progress else True,
    ):
        outs.append(np.asarray(target.run(session, feeds), dtype=np.float32))
    return np.concatenate(outs)


def accuracy_row(
    art: Artifact,
    outputs: np.ndarray,
    fp32_out: np.ndarray,
    fp32_metric: float,
    labels: np.ndarray | None,
    metric: str,
    budget: float,
    sim_out: np.ndarray | None,
) -> Row:
    use_sim = sim_out if art.precision is Precision.INT8 and art.quantizer not in (None, "native") else None
    acc = compare(outputs, fp32_out, labels, metric, use_sim)
    value = float(acc["metric"])  # type: ignore[arg-type]
    within = fp32_metric - value <= budget
    return {
        "target": art.target,
        "precision": art.precision.value,
        "quantizer": art.quantizer,
        "artifact": f"{art.target}/{art.precision.value}",
        "size_mb": art.size_mb,
        "accuracy": acc,
        "delta": value - fp32_metric,
        "within_budget": within,
        "status": Status.OK if within else Status.FAIL,
        "notes": list(art.notes),
        "binary_weights": art.options.get("binary_weights"),  # 1-bit weights: lowered or simulated here
        "latency": None,
        "latency_note": "not run",
    }


def bench_rows(root: Path, rows: list[dict[str, Any]], spec: BenchSpec, sequence: int, progress: bool = True) -> None:
    """Fill each row's latency (each artifact in its own process) and the speedup vs that target's FP32."""
    from .targets.base import get_target

    todo = []
    for r in rows:
        if not validated(r):
            continue
        if not get_target(r["target"]).measures_latency:
            r["latency"], r["latency_note"] = None, "not measured here"
            continue
        todo.append(r)
    for r in tqdm(todo, desc="benchmark", unit="artifact", leave=False, disable=None if progress else True):
        with isolated("bench") as stage:
            try:
                r["latency"] = bench_local(root / r["artifact"], spec, sequence)
                r["latency_note"] = "measured"
            except DeviceError as exc:  # the runtime cannot time it here: the row stands, unmeasured
                r["latency"], r["latency_note"] = None, f"not measured: {exc}"
        if stage.failed:  # the artifact itself broke the benchmark: the row is that error
            r.update(status=stage.status, stage=stage.stage, latency=None, latency_note="not measured")
            r["notes"] = [*r.get("notes", []), stage.note]
    base = {r["target"]: r["latency"]["p50_ms"] for r in rows if r["precision"] == "fp32" and r.get("latency")}
    for r in rows:
        b = base.get(r["target"])
        r["speedup"] = b / r["latency"]["p50_ms"] if b and r.get("latency") else None


def status_row(target: str, precision: Precision, status: Status, note: str) -> Row:
    """A report row for an artifact that was not built (skipped, unsupported): why, and no numbers."""
    return {
        "target": target,
        "precision": precision.value,
        "status": status,
        "notes": [note],
        "latency_note": "not measured here",
    }


def failed_row(target: str, precision: Precision, outcome: Outcome) -> Row:
    """The row of an artifact whose compile or validate stage raised (edgekit.isolate): status and one line."""
    return {**status_row(target, precision, outcome.status or Status.ERROR, outcome.note), "stage": outcome.stage}


def row_failed(row: Row) -> bool:
    """Over budget ("fail"), a stage that raised ("error", see edgekit.isolate), or ``unsupported`` on a target the
    recipe named. ``unsupported`` where ``all`` implied the target (the converter's own reason) is reported only."""
    status = row["status"]
    if status == Status.UNSUPPORTED:
        return bool(row.get("requested"))
    return status not in (Status.OK, Status.SKIPPED)


def passed(rows: list[Row]) -> bool:
    return not any(row_failed(r) for r in rows) and any(r["status"] == Status.OK for r in rows)


def validate_artifact(
    target: Target,
    art: Artifact,
    val: DataSet,
    fp32_out: np.ndarray,
    sim_out: np.ndarray | None,
    metric: str,
    budget: float,
    batch_size: int,
    threads: int,
    progress: bool = True,
) -> Row:
    """Run ``art`` on the validation set (capped at ``target.validation_limit`` samples) and build its row.

    When capped, FP32 and the simulated model are compared on the same first samples, so deltas stay fair. The
    first batch runs once in a subprocess first, so a runtime that crashes natively fails this row, not the run.
    """
    n = min(len(val), target.validation_limit or len(val))
    data = (
        val
        if n == len(val)
        else DataSet(
            {k: v[:n] for k, v in val.inputs.items()}, None if val.labels is None else val.labels[:n], val.description
        )
    )
    ref, sim = fp32_out[:n], None if sim_out is None else sim_out[:n]
    ref_metric = task_metric(metric, ref, ref, data.labels)
    probe_artifact(art.path, next(data.batches(batch_size))[0], threads)
    outputs = predict_artifact(target, art, data, batch_size, threads, progress)
    row = accuracy_row(art, outputs, ref, ref_metric, data.labels, metric, budget, sim)
    row["samples"] = n
    if n < len(val):
        row["notes"].append(
            f"accuracy on the first {n} of {len(val)} validation samples "
            f"(FP32 PyTorch on the same samples: {ref_metric:.2f})"
        )
    return row
