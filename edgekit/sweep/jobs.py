"""Sweep jobs: expansion of a sweep into jobs, their ids, and running one job (in any worker process).

A job is one ``edgekit run`` of one resolved recipe. Its id is a readable prefix (model, target, precision,
device) plus a short hash of everything that decides its result: the resolved recipe, the device, whether it
benchmarks, and a fingerprint of the files it reads (checkpoint directories, weights, data files). A changed
recipe or checkpoint is a new job; an unchanged one is found finished and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..recipe import Precision, Recipe, load_recipe, recipe_from_dict
from .spec import DeviceSpec, JobEntry, ModelEntry, Overrides, Resources, SweepSpec

ERROR = "error"  # a job that raised (or whose worker died): retried by --retry-failed
DONE = "done"  # a job whose run finished (its rows say ok or fail)


@dataclass(frozen=True)
class Job:
    id: str
    model: str
    target: str | None
    precision: str | None
    device: DeviceSpec | None
    recipe: Recipe
    benchmark: bool
    resources: Resources

    def payload(self, out: Path) -> dict[str, Any]:
        """What a worker needs, as plain data (it crosses process and machine boundaries)."""
        return {
            "id": self.id,
            "recipe": self.recipe.to_dict(),
            "out": str(out / self.id),
            "benchmark": self.benchmark,
            "device": None if self.device is None else {"name": self.device.name, "url": self.device.url},
            "threads": max(1, int(self.resources.num_cpus)),
            "train": self.train_payload(),
        }

    def train_payload(self) -> dict[str, Any] | None:
        if not self.data_parallel:
            return None
        r = self.resources
        return {"workers": r.train_workers, "cpus": r.num_cpus, "gpus": r.num_gpus}

    @property
    def data_parallel(self) -> bool:
        """The job trains over Ray Train workers (it has a train stage and declares train_workers)."""
        return self.recipe.train is not None and self.resources.train_workers > 0

    def cell(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "target": self.target,
            "precision": self.precision,
            "device": None if self.device is None else self.device.name,
        }


def expand(spec: SweepSpec, base: Path) -> list[Job]:
    """Every job of the sweep, in grid order (or the explicit list's); recipes resolved and checked now, so a
    malformed sweep fails before anything runs."""
    cells: list[tuple[ModelEntry, str | None, Precision | None, DeviceSpec | None, Overrides]] = []
    if spec.jobs:
        cells = [_entry_cell(spec, j) for j in spec.jobs]
    else:
        for m in spec.models:
            for t in spec.targets or (None,):
                for p in spec.precisions or (None,):
                    for d in spec.devices or (None,):
                        cells.append((m, t, p, d, spec.overrides))
    jobs = [_job(spec, base, *c) for c in cells]
    for j in jobs:
        check_targets(j)
    seen: dict[str, Job] = {}
    for j in jobs:
        if j.id in seen:
            raise_dup(j)
        seen[j.id] = j
    return jobs


def check_targets(job: Job) -> None:
    """Target names, precisions and options are checked now (a typo fails the sweep, not every job); whether a
    target's backend is installed is the job's business (it may be, on the node that runs it)."""
    from ..errors import RecipeError
    from ..targets.base import get_target

    for t in job.recipe.targets:
        if t.name == "all":
            continue
        try:
            get_target(t.name).check_spec(t)
        except RecipeError as exc:
            raise RecipeError(f"sweep job {job.id}: {exc}") from None


def raise_dup(job: Job) -> None:
    from ..errors import RecipeError

    raise RecipeError(f"sweep: job {job.id} is listed twice (same model, target, precision, device and overrides)")


def _entry_cell(spec: SweepSpec, j: JobEntry):
    return spec.model(j.model), j.target, j.precision, spec.device(j.device), j.overrides.over(spec.overrides)


def _job(
    spec: SweepSpec,
    base: Path,
    model: ModelEntry,
    target: str | None,
    precision: Precision | None,
    device: DeviceSpec | None,
    ov: Overrides,
) -> Job:
    recipe = resolve_recipe(model, target, precision, ov, spec.target_options, base)
    benchmark = ov.benchmark is not False
    key = {
        "recipe": recipe.to_dict(),
        "device": None if device is None else [device.name, device.url],
        "benchmark": benchmark,
        "files": fingerprints(recipe),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    parts = [model.label, target, None if precision is None else precision.value, device and device.name]
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts if p))
    return Job(
        f"{prefix}-{digest}",
        model.label,
        target,
        None if precision is None else precision.value,
        device,
        recipe,
        benchmark,
        spec.resources,
    )


def resolve_recipe(
    model: ModelEntry,
    target: str | None,
    precision: Precision | None,
    ov: Overrides,
    target_options: dict[str, dict[str, Any]],
    base: Path,
) -> Recipe:
    """The recipe one job runs: the model's recipe (or a bare one), restricted to the job's target and precision,
    with the overrides applied; reduced mode last, so it shrinks what the overrides set."""
    where = f"sweep model '{model.label}'"
    d: dict[str, Any] = load_recipe(_path(model.recipe, base)).to_dict() if model.recipe else {"model": {}}
    d["name"] = model.label
    m = dict(d.get("model") or {})
    if model.source:
        src = model.source
        m["source"] = str(_path(src, base)) if _is_path(src, base) else src
    if model.config:
        m["config"] = {**m.get("config", {}), **model.config}
    if model.weights:
        m["weights"] = str(_path(model.weights, base))
    d["model"] = m
    d["targets"] = _targets(d.get("targets") or [{"name": "onnx"}], target, precision, target_options)
    _apply(d, ov)
    recipe = recipe_from_dict(d, where)
    if ov.reduced:
        from ..reduced import reduce_recipe

        recipe = reduce_recipe(recipe)
    return recipe


def _targets(
    have: list[dict[str, Any]], target: str | None, precision: Precision | None, options: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    if target is not None:
        own = next((t for t in have if t["name"] == target), {"name": target})
        have = [own]
    out = []
    for t in have:
        t = {**t, "options": {**t.get("options", {}), **options.get(t["name"], {})}}
        if precision is not None:
            t["precisions"] = [precision.value]
        out.append(t)
    return out


def _apply(d: dict[str, Any], ov: Overrides) -> None:
    from ..config import to_dict

    q = d.setdefault("quantization", {})
    for key in ("estimator", "quantizer"):
        if getattr(ov, key) is not None:
            q[key] = getattr(ov, key).value
    if ov.calibration is not None:
        q["calibration"] = to_dict(ov.calibration)
    if ov.calib_samples is not None and q.get("calibration"):
        q["calibration"] = {**q["calibration"], "samples": ov.calib_samples}
    v = d.setdefault("validation", {})
    if ov.validation is not None:
        v["data"] = to_dict(ov.validation)
    if ov.val_samples is not None and v.get("data"):
        v["data"] = {**v["data"], "samples": ov.val_samples}
    if ov.budget is not None:
        v["budget"] = ov.budget
    b = d.setdefault("benchmark", {})
    for key in ("iterations", "warmup", "threads"):
        if getattr(ov, key) is not None:
            b[key] = getattr(ov, key)


def _is_path(text: str, base: Path) -> bool:
    return os.sep in text or text.startswith(".") or (base / text).exists()


def _path(text: str, base: Path) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def fingerprints(recipe: Recipe) -> dict[str, Any]:
    """Size and mtime of every file the recipe reads by path, so a retrained checkpoint is a new job."""
    paths = [recipe.model.source, recipe.model.weights]
    specs = [recipe.validation.data, recipe.quantization.calibration, recipe.train and recipe.train.data]
    paths += [s.path for s in specs if s is not None]
    out: dict[str, Any] = {}
    for text in filter(None, paths):
        p = Path(text)
        if p.is_file():
            out[text] = [p.stat().st_size, p.stat().st_mtime_ns]
        elif p.is_dir():
            out[text] = sorted(
                (str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in p.rglob("*") if f.is_file()
            )
    return out


# ----------------------------------------------------------------------------------------------------------------
# running one job: called in a worker process (local pool) or a Ray task; returns plain data


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
    with tempfile.TemporaryDirectory(prefix="edgekit-job-") as scratch:
        out = Path(scratch) / payload["id"] if ship else Path(payload["out"])
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
    import shutil

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
    from ..device.bench import bench_devices
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
    import shutil

    with tempfile.TemporaryDirectory(dir=out, prefix=".unpack-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        (name,) = os.listdir(tmp)
        dest = out / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(Path(tmp) / name, dest)
