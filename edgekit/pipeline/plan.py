"""What a run will build, decided before any work: each target's precisions, the rows of the ones it will not
build (unavailable, unsupported, cannot express the quantizer's program) and the quantization profiles the
planned INT8 targets lower."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import RecipeError
from ..evaluate import status_row
from ..recipe import Precision, Recipe, TargetSpec
from ..status import Status
from ..targets.base import Target, all_targets, get_target
from ..validate.run_report import Row


@dataclass(frozen=True)
class PlanItem:
    target: Target
    spec: TargetSpec
    implied: bool = False  # expanded from `all`; a named target the model cannot be represented on fails the run

    @property
    def profile(self) -> str:
        """The quantization profile this item's INT8 artifact lowers (its target's, under its options)."""
        return self.target.profile(self.target.parse_options(self.spec.options))


def plan_targets(recipe: Recipe) -> tuple[list[PlanItem], list[dict[str, Any]]]:
    """Resolve target specs; ``all`` expands to every target that can run here (the rest become skipped rows)."""
    plan: list[PlanItem] = []
    skipped: list[dict[str, Any]] = []
    for spec in recipe.targets:
        if spec.name == "all":
            for t in all_targets():
                ok, why = t.available()
                if not ok:
                    skipped += [status_row(t.name, p, Status.SKIPPED, why) for p in spec.precisions]
                    continue
                precisions = [p for p in spec.precisions if p in t.precisions]
                problem = t.quant_problem(recipe.quantization) if Precision.INT8 in precisions else None
                if problem:
                    skipped.append(status_row(t.name, Precision.INT8, Status.SKIPPED, problem))
                    precisions.remove(Precision.INT8)
                precisions = _expressible(t, recipe, precisions, skipped, implied=True)
                if precisions:
                    plan.append(PlanItem(t, TargetSpec(t.name, tuple(precisions)), implied=True))
            continue
        target = get_target(spec.name)
        target.check_spec(spec)
        target.require()
        problem = target.quant_problem(recipe.quantization) if Precision.INT8 in spec.precisions else None
        if problem:
            raise RecipeError(problem)
        precisions = _expressible(target, recipe, list(spec.precisions), skipped)
        if precisions:
            plan.append(PlanItem(target, replace(spec, precisions=tuple(precisions))))
    return plan, skipped


def _expressible(
    target: Target, recipe: Recipe, precisions: list[Precision], rows: list[dict[str, Any]], implied: bool = False
):
    """Drop int8 when the target cannot lower the quantizer's program; the run keeps an ``unsupported`` row."""
    why = _cannot_express(target, recipe.quantization) if Precision.INT8 in precisions else None
    if why:
        rows.append(requested(status_row(target.name, Precision.INT8, Status.UNSUPPORTED, why), not implied))
        return [p for p in precisions if p is not Precision.INT8]
    return precisions


def _cannot_express(target: Target, quant) -> str | None:
    return target.cannot_express(quant)


def requested(row: Row, named: bool) -> Row:
    """Mark the row of a target the recipe names (not one ``all`` implied): ``unsupported`` there fails the run,
    since what was asked for was not built (evaluate.passed)."""
    if named and row["status"] == Status.UNSUPPORTED:
        row["requested"] = True
    return row


def graph_profiles(plan: list[PlanItem]) -> tuple[str, ...]:
    """The quantization profiles the planned INT8 targets lower, in plan order, each once."""
    names = [i.profile for i in plan if Precision.INT8 in i.spec.precisions]
    return tuple(dict.fromkeys(names))
