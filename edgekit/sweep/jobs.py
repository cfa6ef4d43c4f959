"""Sweep jobs: expansion of a sweep into jobs and their ids (running one: :mod:`edgekit.sweep.worker`).

A job is one ``edgekit run`` of one resolved recipe. Its id is a readable prefix (model, target, precision,
device) plus a short hash of everything that decides its result: the resolved recipe, the device, whether it
benchmarks, and a fingerprint of the files it reads (checkpoint directories, weights, data files). A changed
recipe or checkpoint is a new job; an unchanged one is found finished and skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecipeError
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
    seen: set[str] = set()
    for j in jobs:
        if j.id in seen:
            raise RecipeError(f"sweep: job {j.id} is listed twice (same model, target, precision, device, overrides)")
        seen.add(j.id)
    return jobs


def check_targets(job: Job) -> None:
    """Target names, precisions and options are checked now (a typo fails the sweep, not every job); whether a
    target's backend is installed is the job's business (it may be, on the node that runs it)."""
    from ..targets.base import get_target

    for t in job.recipe.targets:
        if t.name == "all":
            continue
        try:
            get_target(t.name).check_spec(t)
        except RecipeError as exc:
            raise RecipeError(f"sweep job {job.id}: {exc}") from None


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
