"""The training loop of the retraining stage: AdamW, linear warm-up + cosine decay, seeded, resumable.

One loop for every objective (labels or distillation). A checkpoint holds the model, optimizer, schedule,
step, the data order and the RNG state, so a resumed run continues exactly where it stopped; Ctrl-C writes one
before stopping.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import DataSet
from ..errors import CalibrationError, TrainingInterrupted
from ..recipe import TrainSpec
from ..signals import signal_number
from .checkpoint import load_checkpoint, save_checkpoint
from .entropy import EntropyRecorder
from .objectives import LabelObjective, auxiliary_loss


@dataclass
class TrainResult:
    steps: int
    epochs: float
    final_loss: float
    train_accuracy: float | None
    seconds: float
    objective: str = "labels"
    resumed_at: int | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    # (step, per-layer attention entropy of that step's training batch), at the loss curve's steps
    entropy_curve: list[tuple[int, list[float]]] = field(default_factory=list)


def total_steps(spec: TrainSpec, n: int) -> int:
    return spec.steps or max(1, int(round(spec.epochs * max(1, n // spec.batch_size))))


def schedule(warmup: int, total: int):
    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))

    return factor


def train(
    model: torch.nn.Module,
    input_names: list[str],
    data: DataSet,
    spec: TrainSpec,
    objective: Any = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    objective = objective or LabelObjective()
    n = len(data)
    if n < spec.batch_size:
        raise CalibrationError(f"training data '{data.description}' has {n} samples, fewer than one batch")
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    total = total_steps(spec, n)
    warmup = max(1, int(spec.warmup_fraction * total))
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")  # a DDP worker's model may sit on its GPU
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(warmup, total))
    order = np.empty(0, dtype=np.int64)
    start_step, loss_ema, correct, seen, curve = 0, 0.0, 0, 0, []
    entropy_curve: list[tuple[int, list[float]]] = []
    recorder = EntropyRecorder(model)
    resumed_at = None
    if resume and checkpoint_dir is not None:
        state = load_checkpoint(checkpoint_dir)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        order, start_step, loss_ema, curve = state["order"], state["step"], state["loss_ema"], state["curve"]
        entropy_curve = state.get("entropy_curve", [])
        resumed_at = start_step

    def checkpoint(step: int) -> Path | None:
        if checkpoint_dir is None:
            return None
        return save_checkpoint(
            checkpoint_dir,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "order": order,
                "step": step,
                "loss_ema": loss_ema,
                "curve": curve,
                "entropy_curve": entropy_curve,
            },
        )

    model.train()
    begin = time.perf_counter()
    steps_per_epoch = max(1, n // spec.batch_size)
    bar = tqdm(
        range(start_step, total),
        initial=start_step,
        total=total,
        desc=f"train ({objective.name})",
        unit="step",
        disable=None if progress else True,
        leave=False,
    )
    step = start_step
    try:
        for step in bar:
            if len(order) < spec.batch_size:
                order = np.concatenate([order, rng.permutation(n)])
            idx = order[: spec.batch_size]  # consumed only when the step completes (an interrupt redoes it)
            xs = [torch.from_numpy(data.inputs[k][idx]).to(device) for k in input_names]
            y = None if data.labels is None else torch.from_numpy(data.labels[idx]).to(device)
            tracked = step % max(1, total // 50) == 0 or step == total - 1
            if tracked and recorder.sites:  # the entropy of this batch's attention, as the paper watches it
                recorder.reset()
                with recorder.recording():
                    loss, out = objective(model, xs, y)
                entropy_curve.append((step, [round(h, 5) for h in recorder.layer_means()]))
            else:
                loss, out = objective(model, xs, y)
            aux = auxiliary_loss(model)
            if aux is not None:
                loss = loss + aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            order = order[spec.batch_size :]
            value = float(loss.detach())
            loss_ema = value if step == 0 else 0.98 * loss_ema + 0.02 * value
            if tracked:
                curve.append((step, round(value, 5)))
            if y is not None and out.ndim == 2 and step >= total - steps_per_epoch // 4:
                correct += int((out.argmax(-1) == y).sum())
                seen += len(y)
            bar.set_postfix(loss=f"{loss_ema:.3f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            if spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0 and step + 1 < total:
                checkpoint(step + 1)
    except KeyboardInterrupt as exc:
        path = checkpoint(step)
        where = f"checkpoint at {path}; continue with --resume" if path else "no checkpoint directory"
        raise TrainingInterrupted(f"training interrupted at step {step}/{total}; {where}", signal_number(exc)) from None
    finally:
        bar.close()
        model.eval()
        if hasattr(objective, "close"):  # objectives may be plain callables
            objective.close()
    return TrainResult(
        total,
        round(total / steps_per_epoch, 3),
        loss_ema,
        100.0 * correct / seen if seen else None,
        time.perf_counter() - begin,
        objective.name,
        resumed_at,
        curve,
        entropy_curve,
    )
