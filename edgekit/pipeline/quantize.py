"""The quantize stage's work: calibration data, then edgekit's per-profile programs (its graph quantizer) or Neural
Compressor's program, each giving the simulated model(s) and the one encodings.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archs import ModelBundle
from ..data import DataSet, load_data
from ..data.predict import predict_torch
from ..errors import RecipeError
from ..metrics import task_metric
from ..quant.simulated import Quantized, Simulation
from ..recipe import Precision, Quantizer, Recipe


def calibration_data(recipe: Recipe, bundle: ModelBundle) -> DataSet | None:
    if Precision.INT8 not in recipe.precisions():
        return None
    if recipe.quantization.calibration is None:
        raise RecipeError("int8 needs quantization.calibration")
    return load_data(recipe.quantization.calibration, bundle, "calibration")


def quantize(
    recipe: Recipe,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet | None,
    tmp: Path,
    val: DataSet,
    progress: bool,
    goal: tuple[str, float],
    log: Any,
    profiles: tuple[str, ...] = (),
) -> Quantized:
    q = recipe.quantization
    if calib is None or q.calibration is None:
        return Quantized()
    info = {
        "data": calib.description,
        "samples": len(calib),
        "estimator": q.estimator.value,
        "quantizer": q.quantizer.value,
        "activation_symmetric": bool(q.activation_symmetric),
        "encodings": 0,
    }
    if q.quantizer is Quantizer.NATIVE:
        return Quantized(info=info)
    if q.quantizer is Quantizer.NEURAL_COMPRESSOR:
        return _inc_quantize(recipe, bundle, names, tmp, val, calib, progress, goal, info, log)
    return _edgekit_quantize(recipe, bundle, names, tmp, val, calib, progress, info, profiles, goal, log)


def _inc_quantize(recipe, bundle, names, tmp, val, calib, progress, goal, info, log):
    """Neural Compressor's PT2E program is the simulated model; its scales are read into encodings.json."""
    from ..quant.inc import inc_quantize

    metric, budget = goal
    bs = recipe.validation.batch_size
    ref: list[np.ndarray] = []

    def evaluate(model: torch.nn.Module) -> float:  # autotune's eval_fn: the recipe's metric vs FP32
        if not ref:
            ref.append(predict_torch(bundle.module, names, val, bs, progress=False))
        return task_metric(metric, predict_torch(model, names, val, bs, progress=False), ref[0], val.labels)

    res = inc_quantize(bundle.module, bundle, names, calib, recipe.quantization, evaluate, budget, log)
    res.encodings.save(tmp / "encodings.json")
    info.update(res.info, encodings=len(res.encodings))
    sim_out = predict_torch(res.program, names, val, recipe.validation.batch_size, "neural-compressor int8", progress)
    return Quantized(Simulation(res.program, res.encodings, sim_out), res.encodings, info)


def _edgekit_quantize(recipe, bundle, names, tmp, val, calib, progress, info, profiles=(), goal=None, log=print):
    """edgekit's quantizer: one PT2E program per profile the planned targets lower (their simulated models), from
    one capture; their scales merge into the one encodings.json."""
    from ..quant.graph import graph_quantize_profiles, merge_encodings
    from ..quant.graph.profiles import DEFAULT_PROFILE, PROFILES

    q = recipe.quantization
    profiles = profiles or (DEFAULT_PROFILE,)
    accuracy = None
    if q.accuracy_aware is not None and goal is not None:
        from ..quant.accuracy_aware import ranking_goal
        from ..quant.graph.accuracy_aware import RankingGoal

        accuracy = RankingGoal(*ranking_goal(q, bundle, goal), q.accuracy_aware)
    results = graph_quantize_profiles(bundle.module, bundle, names, calib, q, profiles, accuracy, log, progress)
    encodings = merge_encodings(results)
    encodings.save(tmp / "encodings.json")
    bs = recipe.validation.batch_size
    sims = {
        name: Simulation(
            res.program,
            res.encodings,
            predict_torch(res.program, names, val, bs, f"simulated int8 ({name})", progress),
            name,
        )
        for name, res in results.items()
    }
    first = results[profiles[0]].info
    info.update({k: v for k, v in first.items() if k not in ("profile", "profile_description", "quantized_ops")})
    info["profiles"] = {
        name: {
            "description": PROFILES.get(name).description,
            "activations": res.info["activations"],
            "quantized_ops": res.info["quantized_ops"],
        }
        for name, res in results.items()
    }
    info["encodings"] = len(encodings)
    return Quantized(sims[profiles[0]], encodings, info, sims)
