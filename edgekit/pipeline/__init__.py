"""Run a recipe stage by stage into one artifact directory with a manifest.

load -> calibration data -> train-phase transforms -> train -> deploy transforms -> FP32 reference -> quantize
     -> compile per target/precision -> validate each artifact -> diagnose failures -> benchmark -> report

The stages are objects in :mod:`.stages` over the typed :class:`~.context.RunContext`; :func:`run_recipe` plans
the targets (failing fast, before any training) and runs them all in a run directory that appears only whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import RunDir
from ..errors import EdgekitError
from ..recipe import Precision, Quantizer, Recipe
from ..transforms import check_transform
from .context import RunContext
from .plan import PlanItem, plan_targets
from .rundir import load_weights, save_run, update_run
from .stages import STAGES, run_stages, stages

__all__ = [
    "STAGES",
    "PlanItem",
    "RunContext",
    "RunResult",
    "load_weights",
    "plan_targets",
    "run_recipe",
    "run_stages",
    "save_run",
    "stages",
    "update_run",
]


@dataclass
class RunResult:
    out: Path
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


def prepare(recipe: Recipe) -> tuple[Recipe, list[PlanItem], list[dict[str, Any]]]:
    """Everything that can fail before any work: the target plan, the quantizer's package, transform options.
    Returns the recipe, the plan and the skipped rows."""
    plan, skipped = plan_targets(recipe)
    if recipe.quantization.quantizer is Quantizer.NEURAL_COMPRESSOR and Precision.INT8 in recipe.precisions():
        from ..quant.inc import require_installed

        require_installed()
    for t in recipe.transforms:
        check_transform(t.name, dict(t.options))
    return recipe, plan, skipped


def run_recipe(
    recipe: Recipe,
    out: str | Path,
    force: bool = False,
    progress: bool = True,
    benchmark: bool = True,
    log: Any = print,
    resume: bool = False,
) -> RunResult:
    recipe, plan, skipped = prepare(recipe)
    with RunDir(Path(out), force) as tmp:
        ctx = RunContext(
            recipe,
            Path(out),
            tmp,
            progress=progress,
            resume=resume,
            benchmark=benchmark,
            log=log,
            plan=plan,
            skipped=skipped,
        )
        run_stages(ctx, STAGES)
    if not ctx.report:
        raise EdgekitError("the run's report stage did not run")
    return RunResult(Path(out), ctx.report)
