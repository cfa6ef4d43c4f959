"""Compile and validate, one artifact at a time: a stage that raises becomes that artifact's row
(:mod:`edgekit.isolate`) and the run goes on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..evaluate import failed_row, status_row, validate_artifact
from ..isolate import isolated
from ..quant.simulated import Quantized, Simulation
from ..recipe import Precision
from ..status import Status
from ..targets.base import CompileContext
from ..validate.run_report import Row
from .context import Built, RunContext
from .plan import PlanItem, requested


def profile_contexts(ctx: CompileContext, quantized: Quantized) -> dict[str, CompileContext]:
    """Per profile, the compile context of its program; its own work dir keeps its Q/DQ ONNX apart."""
    out = {}
    for name, sim in quantized.by_profile.items():
        out[name] = replace(ctx, sim=sim.model, encodings=sim.encodings, workdir=ctx.workdir / name, cache={})
        out[name].workdir.mkdir()
    return out


def with_profile(row: Row, sim: Simulation | None, precision: Precision) -> Row:
    if precision is Precision.INT8 and sim is not None and sim.profile is not None:
        row["profile"] = sim.profile
        row.setdefault("notes", []).append(f"quantization profile {sim.profile}; compared with its program")
    return row


def compile_one(
    run: RunContext, item: PlanItem, precision: Precision, ctx: CompileContext, sim: Simulation | None
) -> Built | Row:
    """Compile one artifact into ``TMP/TARGET/PRECISION``: what validation needs next, or the row of a compile
    that failed or of an artifact that cannot run here. An INT8 artifact keeps ``sim``, the simulated program of
    its target's profile, to be compared with."""
    target, tmp = item.target, run.workdir()
    if precision is Precision.INT8 and run.quantized.failure:
        row = status_row(target.name, precision, Status.UNSUPPORTED, run.quantized.failure)
        return requested(row, not item.implied)
    adir = tmp / target.name / precision.value
    adir.mkdir(parents=True)
    what = f"{target.name} {precision.value}"
    run.log(f"compile {what}")
    with isolated("compile", what, remove=adir, log=run.log) as stage:
        art = target.export(ctx, precision, dict(item.spec.options), adir)
        why = target.cannot_run_here(art)
    if stage.failed:
        return requested(failed_row(target.name, precision, stage), not item.implied)
    if why:
        run.log(f"  {why}")
        return {**status_row(target.name, precision, Status.SKIPPED, why), "artifact": _where(art.path, tmp)}
    return Built(item, precision, art, sim)


def validate_one(run: RunContext, built: Built) -> Row:
    """Validate one compiled artifact against the FP32 reference (and its simulated program)."""
    target, precision, art, sim = built.item.target, built.precision, built.artifact, built.sim
    what = f"{target.name} {precision.value}"
    sim_out = sim.outputs if sim is not None else None
    with isolated("validate", what, log=run.log) as stage:  # returns its row unless it raised: then the row below
        row = validate_artifact(
            target,
            art,
            run.val,
            run.fp32_out,
            sim_out,
            run.metric,
            run.budget,
            run.batch_size,
            run.recipe.benchmark.threads,
            run.progress,
        )
        return with_profile(row, sim, precision)
    row = {
        **failed_row(target.name, precision, stage),
        "artifact": _where(art.path, run.workdir()),
        "size_mb": art.size_mb,
    }
    return requested(row, not built.item.implied)


def _where(path: Path, tmp: Path) -> str:
    return str(path.relative_to(tmp))


def compile_contexts(
    ctx: CompileContext, quantized: Quantized, plan: list[PlanItem]
) -> Iterator[tuple[PlanItem, Precision, CompileContext, Simulation | None]]:
    """Per (plan item, precision): the compile context and simulated program it lowers. An INT8 target of a graph
    profile gets its profile's program; everything else the run's primary one."""
    contexts = profile_contexts(ctx, quantized)
    for item in plan:
        for precision in item.spec.precisions:
            if precision is Precision.INT8 and item.profile in contexts:
                yield item, precision, contexts[item.profile], quantized.for_target(item.profile)
            else:
                yield item, precision, ctx, quantized.primary
