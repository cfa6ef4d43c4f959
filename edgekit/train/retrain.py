"""``edgekit retrain RECIPE``: only the model stages of a recipe (train-phase transforms + training), with the
FP32 metric and outlier metrics before and after. The output is a model directory that ``edgekit run`` takes as
``model.weights`` (its ``recipe.yaml`` already points there)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..archs import load_model
from ..artifacts import RunDir, write_manifest
from ..data import load_data
from ..errors import RecipeError
from ..evaluate import predict_torch, resolve_metric
from ..recipe import Recipe
from ..transforms.apply import apply_transforms, transform_probe
from ..validate.metrics import task_metric
from ..validate.report_outliers import markdown_training, training_summary
from .stage import checkpoint_dir, outlier_sample, run_training, teacher_copy


def retrain(
    recipe: Recipe, out: str | Path, force: bool = False, resume: bool = False, progress: bool = True, log: Any = print
) -> dict[str, Any]:
    out = Path(out)
    if recipe.train is None:
        raise RecipeError(f"recipe '{recipe.name}' has no train: section; add one (data, epochs or steps, distill)")
    with RunDir(out, force) as tmp:
        bundle = load_model(recipe.model, recipe.inputs)
        names = [s.name for s in bundle.inputs]
        val = load_data(recipe.validation.data or recipe.train.data, bundle, "validation")
        metric = resolve_metric(recipe.validation.metric, bundle.task, val)
        teacher = teacher_copy(recipe, bundle)
        applied = apply_transforms(recipe, bundle, "train", transform_probe(val), log)
        ref = predict_torch(teacher or bundle.module, names, val, recipe.validation.batch_size, progress=False)
        sample, ckpt = outlier_sample(val), checkpoint_dir(out)
        info = run_training(recipe, bundle, names, teacher, tmp / "model", ckpt, resume, sample, progress, log)
        after = predict_torch(bundle.module, names, val, recipe.validation.batch_size, progress=progress)
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
