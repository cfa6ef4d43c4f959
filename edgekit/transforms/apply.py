"""Apply a recipe's transforms of one phase, measuring each: exact ones are checked against FP32 outputs."""

from __future__ import annotations

from typing import Any

import torch

from ..archs.base import ModelBundle, count_params
from ..data import DataSet
from ..errors import ParityError
from . import get_transform
from .consumers import example_inputs

EXACT_RTOL = 1e-4


def _run(model: torch.nn.Module, bundle: ModelBundle, probe: DataSet) -> torch.Tensor:
    with torch.no_grad():
        return model(*[torch.from_numpy(probe.inputs[s.name]) for s in bundle.inputs]).float()


def transform_probe(val: DataSet) -> DataSet:
    """The fixed sample every exact transform is checked on (and shape-traced with): one definition, so a
    rebuilt model (``edgekit diagnose``) sees what the run saw."""
    return val.subset(min(len(val), 64), seed=1)


def apply_transforms(recipe: Any, bundle: ModelBundle, phase: str, probe: DataSet, log: Any = print) -> list[dict]:
    """Apply the ``phase`` transforms in recipe order; return one record per transform for the report."""
    records = []
    for spec in recipe.transforms:
        t = get_transform(spec.name)
        if t.phase != phase:
            continue
        model = bundle.module.eval()
        before = _run(model, bundle, probe) if t.exact else None
        params_before = count_params(model)
        with example_inputs(tuple(torch.from_numpy(probe.inputs[s.name][:8]) for s in bundle.inputs)):
            result = t.apply(model, spec.options)
        model, info = result.model.eval(), dict(result.info)
        bundle.module = model
        rec: dict[str, Any] = {
            "name": spec.name,
            "phase": phase,
            "exact": t.exact,
            "description": t.description,
            "options": dict(spec.options),
            "changed": info,
            "parameters_before": params_before,
            "parameters_after": count_params(model),
        }
        if before is not None:
            after = _run(model, bundle, probe)
            diff = float((after - before).abs().max())
            rel = diff / max(float(before.abs().max()), 1e-12)
            rec.update(max_abs_diff=diff, max_rel_diff=rel, checked_on=f"{len(probe)} samples of {probe.description}")
            if rel > EXACT_RTOL:
                raise ParityError(
                    f"transform '{spec.name}' should be exact but changed FP32 outputs by {rel:.2e} "
                    f"(relative) on {len(probe)} validation samples; remove it from the recipe and "
                    "report the model to edgekit"
                )
        log(
            f"transform {spec.name}: {info or 'applied'}"
            + (f", max |diff| {rec['max_abs_diff']:.2e}" if t.exact else "")
        )
        records.append(rec)
    return records
