"""Training objectives: labels (cross-entropy) or knowledge distillation from the original model.

Every objective is ``objective(model, inputs, labels) -> (loss, outputs)``. Modules may add an auxiliary loss
(e.g. a learned hash fitted to the attention map) by defining ``auxiliary_loss() -> Tensor``; the trainer adds
them all.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CalibrationError
from ..nn.capture import on_outputs
from ..nn.sites import first_tensor, transformer_sites
from ..recipe import DistillSpec


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    losses = [m.auxiliary_loss() for m in model.modules() if m is not model and hasattr(m, "auxiliary_loss")]
    losses = [x for x in losses if x is not None]
    return torch.stack([x.reshape(()) for x in losses]).sum() if losses else None


class LabelObjective:
    name = "labels"

    def close(self) -> None:
        pass

    def __call__(self, model: nn.Module, xs: list[torch.Tensor], y: torch.Tensor | None) -> tuple[torch.Tensor, Any]:
        if y is None:
            raise CalibrationError("training on labels needs labelled data; use train.distill for unlabelled data")
        logits = model(*xs)
        return F.cross_entropy(logits, y), logits


class DistillObjective:
    """Outputs (KL at temperature T for classifiers, 1 - cosine for embeddings), hidden states (MSE of every
    layer output, normalized by the teacher's mean square), and optionally labels."""

    name = "distill"

    def __init__(self, teacher: nn.Module, student: nn.Module, spec: DistillSpec, task: str):
        self.teacher, self.spec, self.task = teacher.eval(), spec, task
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self._t_hidden: list[torch.Tensor] = []
        self._s_hidden: list[torch.Tensor] = []
        self._hooks = contextlib.ExitStack()  # the hidden-state hooks, removed by close()
        if spec.hidden:
            t_sites, s_sites = transformer_sites(teacher), transformer_sites(student)
            if not t_sites or len(t_sites) != len(s_sites):
                raise CalibrationError(
                    f"distill.hidden: teacher has {len(t_sites)} transformer layers, student {len(s_sites)}; "
                    "set distill.hidden: 0 for models without matching layers"
                )
            for sites, hidden in ((t_sites, self._t_hidden), (s_sites, self._s_hidden)):
                layers = [(i, site.layer) for i, site in enumerate(sites)]
                self._hooks.enter_context(on_outputs(layers, lambda _i, o, hidden=hidden: hidden.append(o)))

    def close(self) -> None:
        """Remove the hooks: the trained model is deep-copied later (calibration) and must not carry them."""
        self._hooks.close()

    def __call__(self, model: nn.Module, xs: list[torch.Tensor], y: torch.Tensor | None) -> tuple[torch.Tensor, Any]:
        s = self.spec
        self._t_hidden.clear()
        self._s_hidden.clear()
        with torch.no_grad():
            target = self.teacher(*xs)
        out = model(*xs)
        loss = out.new_zeros(())
        if s.outputs:
            if self.task == "classification":
                t = s.temperature
                kl = F.kl_div(
                    F.log_softmax(out / t, -1), F.log_softmax(target / t, -1), log_target=True, reduction="batchmean"
                )
                loss = loss + s.outputs * kl * t * t  # T^2 keeps gradient sizes comparable across temperatures
            else:
                loss = loss + s.outputs * (1 - F.cosine_similarity(out.flatten(1), target.flatten(1))).mean()
        if s.hidden and self._s_hidden:
            pairs = [(first_tensor(a), first_tensor(b)) for a, b in zip(self._s_hidden, self._t_hidden)]
            terms = [F.mse_loss(a, b) / b.pow(2).mean().clamp_min(1e-8) for a, b in pairs]
            loss = loss + s.hidden * torch.stack(terms).mean()
        if s.labels and y is not None and self.task == "classification":
            loss = loss + s.labels * F.cross_entropy(out, y)
        return loss, out
