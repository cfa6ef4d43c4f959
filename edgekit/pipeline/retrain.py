"""``edgekit retrain RECIPE``: only the model stages of a recipe (train-phase transforms + training), with the
FP32 metric and outlier metrics before and after. The output is a model directory that ``edgekit run`` takes as
``model.weights`` (its ``recipe.yaml`` already points there).

It runs the run's own opening stages (:data:`edgekit.pipeline.stages.STAGES`: load, train-phase transforms,
train), so it validates on the same data and trains the same way as ``edgekit run``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..artifacts import RunDir, write_manifest
from ..data.predict import predict_torch
from ..errors import RecipeError
from ..metrics import task_metric
from ..recipe import Recipe
from ..validate.report_outliers import markdown_training, training_summary
from .context import RunContext
from .stages import run_stages, stages


def retrain(
    recipe: Recipe, out: str | Path, force: bool = False, resume: bool = False, progress: bool = True, log: Any = print
) -> dict[str, Any]:
    out = Path(out)
    if recipe.train is None:
        raise RecipeError(f"recipe '{recipe.name}' has no train: section; add one (data, epochs or steps, distill)")
    with RunDir(out, force) as tmp:
        ctx = RunContext(recipe, out, tmp, progress=progress, resume=resume, log=log)
        run_stages(ctx, stages("load", "train-transforms"))
        bundle, names, val, metric, teacher = ctx.model(), ctx.names, ctx.val, ctx.metric, ctx.teacher
        ref = predict_torch(teacher or bundle.module, names, val, ctx.batch_size, progress=False)
        run_stages(ctx, stages("train"))
        info, applied = ctx.train_info, ctx.applied
        after = predict_torch(bundle.module, names, val, ctx.batch_size, progress=progress)
        scores = {
            "metric": metric,
            "before": task_metric(metric, ref, ref, val.labels),
            "after": task_metric(metric, after, ref, val.labels),
            "before_is": "original model" if teacher is not None else "untrained model",
            "data": val.description,
        }
        log(f"{metric} on {val.description}: {scores['before']:.4f} ({scores['before_is']}) -> {scores['after']:.4f}")
        weights = out.resolve() / "model" / "weights.pt"
        follow_up = recipe.with_(model=replace(recipe.model, weights=str(weights)), train=None)
        (tmp / "recipe.yaml").write_text(follow_up.to_yaml())
        report = {"recipe": recipe.name, "train": info, "transforms": applied, "validation": scores}
        (tmp / "retrain.json").write_text(json.dumps(report, indent=1, default=str))
        md = [f"# edgekit retrain: {recipe.name}", "", f"- {training_summary(report)}"]
        md += [
            f"- {metric}: {scores['before']:.4f} ({scores['before_is']}) -> {scores['after']:.4f} on {val.description}"
        ]
        md += [f"- next: `edgekit run {out / 'recipe.yaml'}` (quantize, compile, validate this model)", ""]
        (tmp / "report.md").write_text("\n".join(md + markdown_training(report)))
        write_manifest(tmp, {"recipe": recipe.to_dict(), "results": scores})
    return report
