"""Accuracy-aware quantization: keep the most sensitive quantized ops in FP32 until the INT8 drop fits the budget.

The search, whatever the unit (graph nodes of edgekit's quantizer, :mod:`edgekit.quant.graph.accuracy_aware`):

1. measure the drop of the fully quantized program on the ranking data; within ``max_drop``: done;
2. rank every quantized unit by sensitivity, ``drop-one`` (quantize all but that one: the metric it gives
   back) or ``one-at-a-time`` (quantize only that one: the metric it costs), ties broken by the output
   SQNR against FP32 (continuous, so units a coarse top-1 cannot separate still rank);
3. keep units in FP32 in that order, re-measuring after each, until the drop holds or ``max_layers`` are kept.

The kept units are left unannotated in every profile's program (listed in encodings.json ``meta.fp32_nodes``):
every lowering (Q/DQ ONNX, LiteRT, Core ML, ExecuTorch) then runs them in float.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import DataSet
from ..metrics import DEFAULT_BUDGET, sqnr_db, task_metric
from ..recipe import AccuracyAwareSpec, RevertMethod
from ..registry import Registry


class Evaluator:
    """Metric and output SQNR, against FP32, of the model with a chosen set of layers quantized.

    ``predict(quantized)`` runs the model with only ``quantized`` in int8 (the empty set: FP32) on the ranking
    data; edgekit's quantizer re-annotates and re-calibrates its captured graph for each set."""

    def __init__(self, predict: Callable[[set[str]], np.ndarray], data: DataSet, metric: str):
        self.predict, self.data, self.metric = predict, data, metric
        self.fp32_out = predict(set())
        self.fp32_metric = task_metric(metric, self.fp32_out, self.fp32_out, data.labels)
        self.calls = 0

    def __call__(self, quantized: set[str]) -> tuple[float, float]:
        self.calls += 1
        out = self.predict(quantized)
        return task_metric(self.metric, out, self.fp32_out, self.data.labels), sqnr_db(self.fp32_out, out)


# A sensitivity method: (evaluator, all layers, one layer, metric/SQNR of the fully quantized model)
#   -> (metric sensitivity, SQNR sensitivity); larger = more sensitive.
SensitivityFn = Callable[[Evaluator, set[str], str, float, float], tuple[float, float]]
SENSITIVITY: Registry[SensitivityFn] = Registry("sensitivity method")


@SENSITIVITY.register(RevertMethod.DROP_ONE.value)
def drop_one(ev: Evaluator, layers: set[str], layer: str, base: float, base_sqnr: float) -> tuple[float, float]:
    metric, sqnr = ev(layers - {layer})
    return metric - base, sqnr - base_sqnr


@SENSITIVITY.register(RevertMethod.ONE_AT_A_TIME.value)
def one_at_a_time(ev: Evaluator, layers: set[str], layer: str, base: float, base_sqnr: float) -> tuple[float, float]:
    metric, sqnr = ev({layer})
    return ev.fp32_metric - metric, -min(sqnr, 200.0)


def search(
    ev: Evaluator, layers: list[str], max_drop: float, spec: AccuracyAwareSpec, log: Any = print, unit: str = "layer"
) -> tuple[list[str], dict[str, Any]]:
    """Steps 1-3 of the module docstring: the layers to keep in FP32 (in order) and the report's record."""
    start = time.perf_counter()
    everything = set(layers)
    base, base_sqnr = ev(everything)
    record: dict[str, Any] = {
        "method": spec.method.value,
        "metric": ev.metric,
        "unit": unit,
        "max_drop": max_drop,
        "max_layers": spec.max_layers,
        "data": ev.data.description,
        "samples": len(ev.data),
        "fp32_metric": ev.fp32_metric,
        "int8_metric_before": base,
        "drop_before": ev.fp32_metric - base,
        "sqnr_before_db": base_sqnr,
        "layers_quantized": len(layers),
        "ranking": [],
        "kept_fp32": [],
    }
    if ev.fp32_metric - base <= max_drop:
        record.update(needed=False, int8_metric_after=base, drop_after=ev.fp32_metric - base, seconds=0.0)
        log(f"accuracy-aware: int8 drop {ev.fp32_metric - base:.4f} within {max_drop}; every {unit} stays int8")
        return [], record
    log(f"accuracy-aware: int8 drop {ev.fp32_metric - base:.4f} > {max_drop}; ranking {len(layers)} {unit}s")
    method = SENSITIVITY.get(spec.method.value)
    scores = {layer: method(ev, everything, layer, base, base_sqnr) for layer in layers}
    ranked = sorted(layers, key=lambda n: scores[n], reverse=True)
    kept: list[str] = []
    after = (base, base_sqnr)
    for layer in ranked[: spec.max_layers]:
        kept.append(layer)
        after = ev(everything - set(kept))
        if ev.fp32_metric - after[0] <= max_drop:
            break
    record.update(
        needed=True,
        ranking=[
            {"layer": n, "sensitivity": scores[n][0], "sqnr_sensitivity_db": scores[n][1], "kept_fp32": n in kept}
            for n in ranked
        ],
        kept_fp32=kept,
        int8_metric_after=after[0],
        drop_after=ev.fp32_metric - after[0],
        sqnr_after_db=after[1],
        within=ev.fp32_metric - after[0] <= max_drop,
        evaluations=ev.calls,
        seconds=time.perf_counter() - start,
    )
    log(
        f"accuracy-aware: kept {len(kept)} {unit}(s) in FP32, drop {record['drop_before']:.4f} -> "
        f"{record['drop_after']:.4f} ({'within' if record['within'] else 'still over'} {max_drop})"
    )
    return kept, record


def ranking_goal(quant: Any, bundle: Any, goal: tuple[str, float]) -> tuple[DataSet, str, float]:
    """The ranking data (default: another seeded draw of the calibration source), metric and ``max_drop``.

    The metric is ``accuracy_aware.metric`` or the validation metric; ``top1`` without labels falls back to
    cosine, ``agreement`` (top-1 agreement with FP32, in percent) needs none."""
    from dataclasses import replace

    from ..data import load_data

    spec: AccuracyAwareSpec = quant.accuracy_aware
    source = spec.data or replace(quant.calibration, seed=quant.calibration.seed + 1)
    data = load_data(replace(source, samples=spec.samples), bundle, "accuracy-aware ranking")
    metric, budget = goal
    if spec.metric is not None and spec.metric.value != metric:  # agreement: percentage points, as top-1
        metric, budget = spec.metric.value, DEFAULT_BUDGET.get(spec.metric.value, DEFAULT_BUDGET["top1"])
    if metric == "top1" and data.labels is None:
        metric, budget = "cosine", DEFAULT_BUDGET["cosine"]  # no labels to score top-1: compare outputs
    return data, metric, spec.max_drop if spec.max_drop is not None else budget
