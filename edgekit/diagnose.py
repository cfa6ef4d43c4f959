"""``edgekit diagnose RUN_DIR --target T``: per-node divergence of a run's artifact from its simulated program.

The FP32 model and the target's quantized program are rebuilt from the run directory alone: the resolved recipe
(``recipe.yaml``), the trained weights (``model/weights.pt`` when the run trained, else ``model.weights``), the
run's own load, calibration-data and transform stages, and the quantizer run again under the target's profile
(calibration is deterministic; the nodes accuracy-aware quantization kept in FP32 come from encodings.json
``meta.fp32_nodes`` instead of a new search). The rebuilt scales are checked against encodings.json. The artifact
runs in its runtime with every quantized node's output exposed (see :mod:`edgekit.validate.divergence`); the result
is written to ``RUN_DIR/diagnose/TARGET-PRECISION.{json,md}`` and printed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archs import ModelBundle
from .artifacts import write_file
from .data import DataSet
from .device.runner import read_meta
from .errors import ModelError, OutputExistsError, RecipeError
from .pipeline import RunContext, run_stages, stages
from .pipeline.stages import first_samples
from .quant.encodings import EncodingSet
from .recipe import Quantizer, load_recipe
from .targets.base import get_target, layer_probes
from .validate.divergence import THRESHOLD_DB, divergence
from .validate.report_quant import divergence_markdown


def rebuild(root: Path, target: str) -> tuple[ModelBundle, torch.fx.GraphModule, DataSet, dict[str, Any]]:
    """(bundle with the FP32 model, the target's quantized program, validation data, how the rebuilt scales
    compare with encodings.json) of a run directory."""
    if not (root / "recipe.yaml").is_file() or not (root / "encodings.json").is_file():
        raise ModelError(f"'{root}' is not an edgekit run directory with int8 encodings (recipe.yaml, encodings.json)")
    recipe = load_recipe(root / "recipe.yaml")
    trained = root / "model" / "weights.pt"
    weights = str(trained) if trained.is_file() else recipe.model.weights
    # the run's own load, calibration-data and transform stages, with the weights the run ended with, no training
    ctx = RunContext(recipe.with_(model=replace(recipe.model, weights=weights), train=None), root, log=lambda *_: None)
    run_stages(ctx, stages("load", "calibration-data", "train-transforms", "deploy-transforms"))
    bundle, q = ctx.model(), recipe.quantization
    if ctx.calib is None:
        raise RecipeError(f"{root}/recipe.yaml: no int8 target or no quantization.calibration to rebuild from")
    saved = EncodingSet.load(root / "encodings.json")
    profile = None
    if q.quantizer is Quantizer.NEURAL_COMPRESSOR:
        from .quant.inc import inc_quantize

        res = inc_quantize(bundle.module, bundle, ctx.names, ctx.calib, q, None, 0.0, log=lambda *_: None)
    else:
        from .quant.graph import graph_quantize_profiles

        t = get_target(target)
        spec = next((s for s in recipe.targets if s.name == target), None)
        profile = t.profile(t.parse_options(spec.options if spec else None))
        keep = frozenset(saved.meta.get("fp32_nodes", []))
        spec = replace(q, accuracy_aware=None)
        res = graph_quantize_profiles(bundle.module, bundle, ctx.names, ctx.calib, spec, (profile,), keep_float=keep)
        res = res[profile]
    return bundle, res.program, ctx.val, compare_encodings(res.encodings, saved, profile)


def compare_encodings(rebuilt: EncodingSet, saved: EncodingSet, profile: str | None) -> dict[str, Any]:
    """How a rebuilt program's scales match the run's encodings.json (keys ``KEY`` or ``KEY@PROFILE``)."""
    worst, missing = 0.0, 0
    for key, enc in rebuilt.tensors.items():
        old = saved.tensors.get(f"{key}@{profile}") or saved.tensors.get(key)
        if old is None or len(old.scale) != len(enc.scale):
            missing += 1
            continue
        a, b = np.asarray(enc.scale), np.asarray(old.scale)
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))))
    return {
        "tensors": len(rebuilt),
        "not_in_encodings": missing,
        "max_scale_rel_diff": worst,
        "matches": missing == 0 and worst < 1e-4,
    }


def diagnose(
    root: Path,
    target: str,
    precision: str = "int8",
    samples: int = 8,
    threshold_db: float = THRESHOLD_DB,
    force: bool = False,
) -> dict[str, Any]:
    # no manifest check here, unlike validate: diagnosing an artifact changed since the run (a hand-edited or
    # rebuilt lowering) is what this command is for; it writes only into RUN_DIR/diagnose/
    stem = f"{target}-{precision}"
    written = [root / "diagnose" / f"{stem}.{ext}" for ext in ("json", "md")]
    if not force and any(p.exists() for p in written):
        raise OutputExistsError(f"'{written[0]}' already exists; pass --force to replace it")
    art = root / target / precision
    if not (art / "artifact.json").is_file():
        raise RecipeError(f"'{root}' has no {target} {precision} artifact; `edgekit diagnose` needs one that was built")
    meta = read_meta(art)
    probes = layer_probes()  # runtime -> the target that exposes its layer outputs
    if meta["runtime"] not in probes:
        raise RecipeError(
            f"{target}: its runtime '{meta['runtime']}' cannot expose intermediate outputs here; "
            f"diagnose a target run by {' or '.join(probes.names())} (e.g. --target onnx)"
        )
    bundle, program, val, rebuilt = rebuild(root, target)
    data = first_samples(val, samples)
    names = [s.name for s in bundle.inputs]
    result = divergence(art, meta, program, names, data, threshold_db)
    result["rebuilt_program"] = rebuilt
    if not rebuilt["matches"]:
        result["verdict"] += (
            f"; note: the rebuilt program's scales differ from encodings.json (max relative difference "
            f"{rebuilt['max_scale_rel_diff']:.2g}, {rebuilt['not_in_encodings']} tensors not in it): the run's data "
            "or code changed since"
        )
    write_file(written[0], json.dumps(result, indent=1), force=True)
    write_file(written[1], "\n".join(divergence_markdown(result)) + "\n", force=True)
    return result
