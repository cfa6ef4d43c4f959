"""Running one sweep job, in whatever process the executor chose (a local worker process or a Ray task).

Everything here takes and returns plain data: the job's payload in, its result out (status, rows, log, and the
run directory as an archive when the driver's DIR is on another machine). A job never raises: its failure is its
result.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..recipe import Recipe, recipe_from_dict
from .jobs import DONE, ERROR


def execute(payload: dict[str, Any], ship: bool = False) -> dict[str, Any]:
    """Run one job and never raise: a job that fails is a result with its one-line error (and the traceback in
    its log). ``ship``: run into a temporary directory and return the run directory as a tar.gz (the driver's
    DIR is not visible from this machine)."""
    import edgekit

    begin = time.time()
    log = io.StringIO()
    result: dict[str, Any] = {
        "id": payload["id"],
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "edgekit": str(Path(edgekit.__file__).resolve().parent),
    }
    # only a shipped run needs scratch space (a worker that dies cannot clean it up)
    with tempfile.TemporaryDirectory(prefix="edgekit-job-") if ship else contextlib.nullcontext() as scratch:
        out = Path(scratch) / payload["id"] if scratch else Path(payload["out"])
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                result.update(_run(payload, out))
            result["status"] = DONE
            if ship:
                result["archive"] = archive_dir(out)
        except BaseException as exc:  # a job's failure is its row, whatever it raised
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc(file=log)
            first = (str(exc).strip().splitlines() or [""])[0]
            result.update(status=ERROR, error=f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
    result["started"], result["finished"] = begin, time.time()
    result["seconds"] = round(result["finished"] - begin, 3)
    result["log"] = log.getvalue()
    return result


def _run(payload: dict[str, Any], out: Path) -> dict[str, Any]:
    import torch

    from ..pipeline import run_recipe

    threads = payload["threads"]
    torch.set_num_threads(threads)
    recipe = recipe_from_dict(payload["recipe"], f"job {payload['id']}")
    device = payload["device"]
    trained = None
    if payload["train"]:
        trained = _train_data_parallel(recipe, out, payload["train"])
        recipe = recipe.with_(model=replace(recipe.model, weights=str(trained[0])), train=None)
    res = run_recipe(recipe, out, force=True, progress=False, benchmark=payload["benchmark"] and device is None)
    if trained is not None:
        _keep_weights(res.report, out, Path(payload["out"]), recipe, *trained)
    rows = [dict(r) for r in res.report["rows"]]
    if device is not None and payload["benchmark"]:
        _bench_on_device(out, device, recipe, rows)
    return {
        "rows": rows,
        "metric": res.report["metric"],
        "budget": res.report["budget"],
        "reference": res.report["reference"],
        "passed": res.passed,
    }


def _train_data_parallel(recipe: Recipe, out: Path, train: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The train stage over Ray Train workers; weights beside the (atomically written) run directory."""
    from ..train.distributed import ddp_train

    side = out.with_name(out.name + ".train")
    info = ddp_train(recipe, side, train["workers"], train["gpus"], train["cpus"])
    print(f"train (data-parallel, {train['workers']} workers): {info['steps']} steps, loss {info['final_loss']:.3f}")
    return side / "weights.pt", info


def _keep_weights(
    report: dict[str, Any], out: Path, final: Path, recipe: Recipe, weights: Path, info: dict[str, Any]
) -> None:
    """Move the trained weights into the run (RUN/model/weights.pt, as a single-process run writes them) and
    record the training in its report, recipe and manifest."""
    from ..pipeline import save_run

    (out / "model").mkdir(exist_ok=True)
    shutil.move(weights, out / "model" / "weights.pt")
    shutil.rmtree(weights.parent, ignore_errors=True)
    recipe = recipe.with_(model=replace(recipe.model, weights=str(final / "model" / "weights.pt")))
    (out / "recipe.yaml").write_text(recipe.to_yaml())
    report["train"] = info
    report["model"]["weights"] = str(final / "model" / "weights.pt")
    save_run(out, report, recipe)


def _bench_on_device(run: Path, device: dict[str, str], recipe: Recipe, rows: list[dict[str, Any]]) -> None:
    """Benchmark the run's artifacts on the job's device; its p50/p99 replace the rows' (none were measured)."""
    from ..bench import bench_devices
    from ..device.transports import BenchOptions

    b = recipe.benchmark
    opts = BenchOptions(
        iterations=b.iterations, warmup=b.warmup, threads=b.threads, sequence=recipe.validation_data().max_length
    )
    report = bench_devices(run, [device["url"]], opts, run / "devices", None)
    measured = {e["artifact"]: e for e in report["entries"] if e.get("result")}
    for r in rows:
        e = measured.get(r.get("artifact"))
        if e is None:
            r["latency"], r["latency_note"] = None, f"not measured on {device['name']}"
            continue
        r["latency"] = {k: e["result"].get(k) for k in ("p50_ms", "p90_ms", "p99_ms")}
        r["latency_note"] = f"measured on {device['name']}"


def archive_dir(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def unpack(archive: bytes, out: Path) -> None:
    """Write a shipped run directory into ``out/<its name>`` (replacing an older one)."""
    with tempfile.TemporaryDirectory(dir=out, prefix=".unpack-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        (name,) = os.listdir(tmp)
        dest = out / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(Path(tmp) / name, dest)
