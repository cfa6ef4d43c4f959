"""Short supervised training on real data (from scratch or fine-tuning): AdamW, warm-up + cosine, seeded."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import DataSet
from ..errors import CalibrationError
from ..recipe import TrainSpec


@dataclass
class TrainResult:
    steps: int
    epochs: float
    final_loss: float
    train_accuracy: float
    seconds: float


def train_classifier(
    model: torch.nn.Module, input_names: list[str], data: DataSet, spec: TrainSpec, progress: bool = True
) -> TrainResult:
    if data.labels is None:
        raise CalibrationError(f"training data '{data.description}' has no labels")
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    n = len(data)
    steps_per_epoch = max(1, n // spec.batch_size)
    total = max(1, int(round(spec.epochs * steps_per_epoch)))
    warmup = max(1, int(spec.warmup_fraction * total))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup + 1)))
        ),
    )
    model.train()
    start = time.perf_counter()
    order = np.empty(0, dtype=np.int64)
    loss_ema, correct, seen = 0.0, 0, 0
    bar = tqdm(range(total), desc="train", unit="step", disable=None if progress else True, leave=False)
    for step in bar:
        if len(order) < spec.batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        idx, order = order[: spec.batch_size], order[spec.batch_size :]
        xs = [torch.from_numpy(data.inputs[k][idx]) for k in input_names]
        y = torch.from_numpy(data.labels[idx])
        logits = model(*xs)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        loss_ema = value if step == 0 else 0.98 * loss_ema + 0.02 * value
        if step >= total - steps_per_epoch // 4:  # accuracy over the last quarter epoch
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(y)
        bar.set_postfix(loss=f"{loss_ema:.3f}")
    model.eval()
    return TrainResult(total, spec.epochs, loss_ema, 100.0 * correct / max(seen, 1), time.perf_counter() - start)
