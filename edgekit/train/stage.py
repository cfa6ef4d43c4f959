"""The retraining stage shared by ``edgekit run`` (a recipe's ``train:`` section) and ``edgekit retrain``.

Trains ``bundle.module`` (already carrying the recipe's train-phase transforms) on labels or by distillation
from ``teacher`` (the model before those transforms), measures the outlier metrics before and after, and
saves the weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from ..archs import ModelBundle
from ..data import DataSet, load_data
from ..errors import RecipeError
from ..recipe import Recipe
from .checkpoint import remove_checkpoint
from .entropy import attention_entropy
from .objectives import DistillObjective, LabelObjective
from .outliers import outlier_metrics
from .trainer import train


def checkpoint_dir(out: Path) -> Path:
    """Checkpoints live beside the (atomically written) output, so Ctrl-C keeps them."""
    return out.with_name(out.name + ".ckpt")


def teacher_copy(recipe: Recipe, bundle: ModelBundle) -> torch.nn.Module | None:
    """The original model, frozen, when the recipe distills from it (taken before any train-phase transform)."""
    return copy.deepcopy(bundle.module).eval() if recipe.train and recipe.train.distill else None


def outlier_sample(val: DataSet) -> DataSet:
    """The validation sample the outlier metrics are measured on, before and after training."""
    return val.subset(min(len(val), 512), seed=2)


def run_training(
    recipe: Recipe,
    bundle: ModelBundle,
    names: list[str],
    teacher: torch.nn.Module | None,
    model_dir: Path,
    ckpt: Path | None,
    resume: bool,
    probe: DataSet,
    progress: bool,
    log: Any = print,
) -> dict[str, Any]:
    spec = recipe.train
    if spec is None:
        raise RecipeError("this recipe has no train: section; add one (data, epochs or steps, distill)")
    data = load_data(spec.data, bundle, "training")
    # before the distillation hooks exist: they would keep every teacher layer's output of this pass
    before = outlier_metrics(teacher if teacher is not None else bundle.module, names, probe)
    entropy_before = attention_entropy(bundle.module, names, probe)
    if spec.distill is not None:
        if teacher is None:
            raise RecipeError("train.distill needs the original model as teacher")
        objective: Any = DistillObjective(teacher, bundle.module, spec.distill, bundle.task)
    else:
        objective = LabelObjective()
    what = f"{spec.steps} steps" if spec.steps else f"{spec.epochs} epoch(s)"
    log(f"train ({objective.name}): {what} on {data.description}")
    res = train(bundle.module, names, data, spec, objective, ckpt, resume, progress)
    log(f"train: {res.steps} steps in {res.seconds:.0f} s, loss {res.final_loss:.3f}")
    after = outlier_metrics(bundle.module, names, probe)
    entropy_after = attention_entropy(bundle.module, names, probe)
    if entropy_after.get("applicable"):
        log(f"attention entropy (mean over layers): {entropy_before['mean']:.3f} -> {entropy_after['mean']:.3f}")
    if after.get("applicable"):
        log(
            f"outliers: attention max inf-norm {before['attention_max_inf_norm']:.1f} -> "
            f"{after['attention_max_inf_norm']:.1f}, kurtosis {before['attention_kurtosis']:.1f} -> "
            f"{after['attention_kurtosis']:.1f}"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(bundle.module.state_dict(), model_dir / "weights.pt")  # for model.weights in a recipe
    if ckpt is not None:
        remove_checkpoint(ckpt)
    return {
        "data": data.description,
        "samples": len(data),
        **res.__dict__,
        "outliers": {"before": before, "after": after, "before_is": "teacher" if teacher is not None else "init"},
        "entropy": {"before": entropy_before, "after": entropy_after},
    }
