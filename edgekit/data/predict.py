"""PyTorch outputs over a data set, batch by batch with a progress bar: the FP32 reference, the simulated model
and every other torch-side prediction go through here, so a model that rejects its inputs fails one way."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ModelError
from .base import DataSet


def predict_torch(
    model: torch.nn.Module,
    names: list[str],
    data: DataSet,
    batch_size: int,
    desc: str = "fp32 reference",
    progress: bool = True,
) -> np.ndarray:
    outs = []
    n = -(-len(data) // batch_size)
    with torch.inference_mode():
        for feeds, _ in tqdm(
            data.batches(batch_size), total=n, desc=desc, leave=False, disable=None if progress else True
        ):
            try:
                y = model(*[torch.from_numpy(feeds[k]) for k in names])
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                shapes = {k: list(v.shape) for k, v in feeds.items()}
                raise ModelError(
                    f"the model failed on inputs {shapes}: {str(exc).splitlines()[0]}; check the "
                    "recipe's inputs (shape/dtype) against the model"
                ) from None
            outs.append(y.float().numpy())
    return np.concatenate(outs)
