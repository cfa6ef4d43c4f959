"""Data-parallel training of a recipe's ``train:`` stage with torch DDP on Ray Train workers (``TorchTrainer``).

Every worker builds the model and the train-phase transforms as ``edgekit run`` does, takes its rank's shard of
the training set (samples ``rank::world``), and runs edgekit's own training loop on the DDP-wrapped model: DDP
broadcasts rank 0's initial weights and averages gradients each step, so ``train.batch_size`` is per worker (the
global batch is ``workers x batch_size``) and each worker's epoch is its shard. With GPUs each worker gets one and
NCCL; without, gloo on CPUs. Rank 0 returns the trained weights; the run then uses them as ``model.weights``.
Not supported here: resuming (no checkpoints are written mid-training) and the outlier metrics of the
single-process stage.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import EdgekitError, first_line_or_type
from ..recipe import Recipe

WEIGHTS = "weights.pt"


def _worker(config: dict[str, Any]) -> None:
    """The training loop of one Ray Train worker."""
    import ray.train
    import ray.train.torch
    import torch

    from ..archs import load_model
    from ..data import DataSet, load_data
    from ..recipe import recipe_from_dict
    from ..transforms.apply import apply_transforms, transform_probe
    from .objectives import DistillObjective, LabelObjective
    from .stage import teacher_copy
    from .trainer import train

    recipe = recipe_from_dict(config["recipe"], "train worker")
    spec = recipe.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(spec.seed)  # every rank builds the same model (DDP broadcasts rank 0's weights anyway)
    bundle = load_model(recipe.model, recipe.inputs)
    names = [s.name for s in bundle.inputs]
    probe = transform_probe(load_data(recipe.validation_data(), bundle, "validation"))
    teacher = teacher_copy(recipe, bundle)
    apply_transforms(recipe, bundle, "train", probe, lambda *_: None)
    data = load_data(spec.data, bundle, "training")
    shard = DataSet(
        {k: v[rank::world] for k, v in data.inputs.items()},
        None if data.labels is None else data.labels[rank::world],
        data.description,
    )
    model = ray.train.torch.prepare_model(bundle.module)  # to this worker's device; DDP when world > 1
    if teacher is not None:
        teacher.to(ray.train.torch.get_device())
        objective: Any = DistillObjective(teacher, bundle.module, spec.distill, bundle.task)
    else:
        objective = LabelObjective()
    res = train(model, names, shard, spec, objective, None, False, progress=False)
    metrics = {
        "steps": res.steps,
        "epochs": res.epochs,
        "final_loss": res.final_loss,
        "train_accuracy": res.train_accuracy,
        "seconds": res.seconds,
        "objective": res.objective,
        "shard_samples": len(shard),
        "loss_curve": res.loss_curve,
    }
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        state = {k: v.detach().cpu() for k, v in bundle.module.state_dict().items()}
        torch.save(state, Path(tmp) / WEIGHTS)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def ddp_train(
    recipe: Recipe, model_dir: Path, workers: int, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0
) -> dict[str, Any]:
    """Train ``recipe``'s model over ``workers`` Ray Train workers; write ``model_dir/weights.pt`` and return the
    training record (the keys of the single-process stage's, plus ``distributed``)."""
    from ..raylib import MissingRayError, import_ray

    ray = import_ray("data-parallel training")
    try:
        from ray.train import RunConfig, ScalingConfig, TrainingFailedError
        from ray.train.torch import TorchTrainer
    except ImportError:  # ray without its train extra (pyarrow, ...)
        raise MissingRayError("data-parallel training", "ray[train]", "ray-train") from None

    if recipe.train is None:
        raise EdgekitError(f"recipe '{recipe.name}' has no train: section to run data-parallel")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    use_gpu = gpus_per_worker > 0
    per_worker = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    with tempfile.TemporaryDirectory(prefix="edgekit-ddp-") as storage:
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"recipe": recipe.to_dict(), "threads": max(1, int(cpus_per_worker))},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
            run_config=RunConfig(name=f"edgekit-{recipe.name}", storage_path=storage),
        )
        try:
            result = trainer.fit()
        except TrainingFailedError as exc:
            raise EdgekitError(f"data-parallel training failed: {first_line_or_type(exc)}") from None
        if result.error is not None:
            raise EdgekitError(f"data-parallel training failed: {first_line_or_type(result.error)}")
        model_dir.mkdir(parents=True, exist_ok=True)
        with result.checkpoint.as_directory() as ckpt:
            shutil.copy(Path(ckpt) / WEIGHTS, model_dir / WEIGHTS)
    info = dict(result.metrics)
    info.update(
        data=f"{recipe.train.data.source} (each of {workers} workers trains on its shard)",
        distributed={"workers": workers, "backend": "nccl" if use_gpu else "gloo", "resources_per_worker": per_worker},
    )
    return info
