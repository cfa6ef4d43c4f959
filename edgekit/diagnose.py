"""``edgekit diagnose RUN_DIR --target T``: per-layer divergence of a run's artifact from its simulated model.

The FP32 and simulated-INT8 PyTorch models are rebuilt from the run directory alone: the resolved recipe
(``recipe.yaml``), the trained weights (``model/weights.pt`` when the run trained, else ``model.weights``) and the
encodings (``encodings.json``, including the layers accuracy-aware quantization kept in FP32). The artifact runs
in its runtime with every layer output exposed (see :mod:`edgekit.validate.divergence`); the result is written to
``RUN_DIR/diagnose/TARGET-PRECISION.{json,md}`` and printed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .archs import ModelBundle
from .artifacts import write_file
from .data import DataSet, load_data
from .device.runner import read_meta
from .errors import ModelError, OutputExistsError, RecipeError
from .pipeline import RunContext, run_stages, stages
from .pipeline.stages import first_samples
from .recipe import load_recipe
from .targets.base import layer_probes
from .validate.divergence import THRESHOLD_DB, divergence
from .validate.report_quant import divergence_markdown


def rebuild(root: Path) -> tuple[ModelBundle, torch.nn.Module, DataSet]:
    """(bundle with the FP32 model, simulated INT8 model, validation data) of a run directory."""
    from .quant.encodings import EncodingSet
    from .quant.fakequant import apply_encodings, wrap_layers

    if not (root / "recipe.yaml").is_file() or not (root / "encodings.json").is_file():
        raise ModelError(f"'{root}' is not an edgekit run directory with int8 encodings (recipe.yaml, encodings.json)")
    recipe = load_recipe(root / "recipe.yaml")
    trained = root / "model" / "weights.pt"
    weights = str(trained) if trained.is_file() else recipe.model.weights
    # the run's own load and transform stages, with the weights the run ended with and no training
    ctx = RunContext(recipe.with_(model=replace(recipe.model, weights=weights), train=None), root, log=lambda *_: None)
    run_stages(ctx, stages("load", "train-transforms", "deploy-transforms"))
    bundle, val = ctx.model(), ctx.val
    model = bundle.module
    q = recipe.quantization
    if q.scale_reparam:  # exact in FP32; recomputed on the same calibration data, as calibration did
        from .quant.scale_reparam import equalize_norm_scales

        if q.calibration is None:
            raise RecipeError(f"{root}/recipe.yaml: scale_reparam needs quantization.calibration")
        model = copy.deepcopy(model).eval()
        calib = load_data(q.calibration, bundle, "calibration")
        equalize_norm_scales(model, [s.name for s in bundle.inputs], calib, q.calibration.batch_size)
    encodings = EncodingSet.load(root / "encodings.json")
    producer = encodings.meta.get("producer")
    if producer:
        raise ModelError(
            f"'{root}': its encodings were read from {producer}'s program (keys are graph nodes); diagnose rebuilds "
            "edgekit's module-wrapped simulated model, so it needs a run with quantizer: edgekit"
        )
    sim = apply_encodings(wrap_layers(model, q), encodings)
    return bundle, sim, val


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
    bundle, sim, val = rebuild(root)
    data = first_samples(val, samples)
    names = [s.name for s in bundle.inputs]
    result = divergence(art, meta, sim, bundle.module, names, data, threshold_db)
    write_file(written[0], json.dumps(result, indent=1), force=True)
    write_file(written[1], "\n".join(divergence_markdown(result)) + "\n", force=True)
    return result
