"""`edgekit validate DIR` and `edgekit bench DIR`: re-check the artifacts of an existing run directory.

Validation re-reads the recipe's validation data and compares each artifact with the stored FP32 (and
simulated INT8) reference outputs in reference.npz, so no PyTorch model needs to be rebuilt.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archs.base import ModelBundle
from .artifacts import verify_manifest
from .data import load_data
from .errors import ModelError
from .evaluate import bench_rows, failed_row, passed, validate_artifact
from .isolate import isolated
from .pipeline import RunResult, update_run
from .recipe import BenchSpec, TensorSpec, load_recipe
from .status import Status
from .targets.base import Artifact, get_target
from .validate.run_report import read_report


def _load(root: Path) -> tuple[dict[str, Any], Any]:
    """The run's report and recipe, after every file was checked against manifest.json: a tampered run is never
    validated (or re-recorded) as the one that was built."""
    verify_manifest(root)
    for name in ("report.json", "recipe.yaml", "reference.npz"):
        if not (root / name).is_file():
            raise ModelError(f"'{root}' is not a complete edgekit run directory (no {name}); rebuild the run")
    report = read_report(root, ("io", "rows", "metric", "budget", "validation", "model"))
    return report, load_recipe(root / "recipe.yaml")


def reference(root: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """FP32 outputs and the simulated INT8 outputs (``sim_int8``, and ``sim_int8_PROFILE`` per graph profile)."""
    try:
        with np.load(root / "reference.npz") as z:
            return z["fp32"], {k: z[k] for k in z.files if k.startswith("sim_int8")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{root}/reference.npz is damaged ({type(exc).__name__}); rebuild the run") from None


def sim_for(sims: dict[str, np.ndarray], row: dict[str, Any]) -> np.ndarray | None:
    """The simulated outputs a row was validated against: its graph profile's program, else the run's one."""
    profile = row.get("profile")
    return sims.get(f"sim_int8_{profile}") if profile else sims.get("sim_int8")


def validation_set(report: dict[str, Any]) -> Any:
    """The run's validation data, loaded from its recorded spec with a stub bundle (no model is rebuilt)."""
    from .recipe import DataSpec

    io = report["io"]
    inputs = tuple(TensorSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in io["inputs"])
    stub = ModelBundle(
        torch.nn.Identity(),
        inputs,
        report["model"]["family"],
        report["model"]["task"],
        io["output"],
        tokenizer_dir=io.get("tokenizer_dir"),
    )
    return load_data(DataSpec(**report["validation"]["spec"]), stub, "validation")


def revalidate(root: Path, progress: bool = True) -> RunResult:
    """Re-run every artifact on the validation data; writes nothing (the run stays as its manifest recorded)."""
    report, recipe = _load(root)
    val = validation_set(report)
    fp32, sims = reference(root)
    if len(fp32) != len(val):
        raise ModelError(f"validation data now has {len(val)} samples but the run recorded {len(fp32)}")
    metric, budget = report["metric"], report["budget"]
    rows = []
    for old in report["rows"]:
        if old["status"] == Status.SKIPPED or not old.get("artifact"):  # nothing was built (or it cannot run here)
            rows.append(old)
            continue
        art = Artifact.read(root / old["artifact"])
        target = get_target(art.target)
        with isolated("validate", f"{art.target} {art.precision.value}") as stage:
            row = validate_artifact(
                target,
                art,
                val,
                fp32,
                sim_for(sims, old),
                metric,
                budget,
                recipe.validation.batch_size,
                recipe.benchmark.threads,
                progress,
            )
        if stage.failed:
            row = {**failed_row(art.target, art.precision, stage), "artifact": old["artifact"]}
        row.update({k: old.get(k) for k in ("latency", "latency_note", "speedup")})
        if "profile" in old:
            row["profile"] = old["profile"]
        rows.append(row)
    report["rows"] = rows
    report["passed"] = passed(rows)
    return RunResult(root, report)


def rebench(
    root: Path,
    iterations: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> RunResult:
    report, recipe = _load(root)
    spec: BenchSpec = recipe.benchmark
    changes = {k: v for k, v in (("iterations", iterations), ("warmup", warmup), ("threads", threads)) if v is not None}
    spec = replace(spec, **changes)
    bench_rows(root, report["rows"], spec, report["validation"]["spec"].get("max_length", 64), progress)
    report["benchmark"] = spec.__dict__
    update_run(root, report)
    return RunResult(root, report)
