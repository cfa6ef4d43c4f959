"""Accuracy-aware quantization on the captured graph (``quantization.accuracy_aware``).

The search of :mod:`edgekit.quant.accuracy_aware` (measure, rank by drop-one or one-at-a-time sensitivity, keep
the most sensitive in float one at a time), over the graph's quantized op-pattern nodes
(``features.0.conv/conv2d_3``). A trial quantizes a fresh copy of the captured graph with the nodes left in float
given no annotation (``EdgekitQuantizer(exclude=...)``), calibrated on the same batches, with the recipe's
after-convert passes (bias correction), so each trial is the program that would ship. The search runs on the first
profile's program; the kept nodes are left unannotated in every profile, so every target runs them in float.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data import DataSet
from ...recipe import AccuracyAwareSpec, QuantSpec
from ..accuracy_aware import Evaluator, search
from .passes import GraphPasses
from .profiles import Profile


@dataclass(frozen=True)
class RankingGoal:
    """What the search scores: the ranking data, the metric and the largest drop allowed."""

    data: DataSet
    metric: str
    max_drop: float
    spec: AccuracyAwareSpec


def keep_sensitive_float(
    captured: torch.fx.GraphModule,
    names: list[str],
    calib: DataSet,
    q: QuantSpec,
    prof: Profile,
    batch: int,
    passes: GraphPasses,
    goal: RankingGoal,
    log: Any = print,
    ignored: frozenset[str] = frozenset(),
) -> tuple[frozenset[str], dict[str, Any]]:
    """The nodes to leave in float (empty when the fully quantized program is within ``goal.max_drop``) and the
    report's record. ``ignored`` nodes (the recipe's ``ignore``) stay float in every trial and are not ranked."""
    from ...data.predict import predict_torch
    from .annotate import EdgekitQuantizer, annotated_nodes
    from .quantize import _quantize_captured, profile_symmetric

    probe = EdgekitQuantizer(q, prof, profile_symmetric(q, prof), ignored).annotate(copy.deepcopy(captured))
    nodes = annotated_nodes(probe)
    del probe

    def predict(quantized: set[str]) -> np.ndarray:
        if not quantized:
            return predict_torch(captured, names, goal.data, batch, progress=False)
        exclude = ignored | frozenset(n for n in nodes if n not in quantized)
        res = _quantize_captured(copy.deepcopy(captured), names, calib, q, prof, batch, exclude)
        passes.after_convert(res)
        return predict_torch(res.program, names, goal.data, batch, progress=False)

    ev = Evaluator(predict, goal.data, goal.metric)
    kept, record = search(ev, nodes, goal.max_drop, goal.spec, log, unit="graph node")
    record["profile"] = prof.name
    return frozenset(kept), record
