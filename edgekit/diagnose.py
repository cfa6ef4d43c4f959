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

from .archs import ModelBundle, load_model
from .artifacts import write_file
from .data import DataSet, load_data
from .errors import ModelError, OutputExistsError, RecipeError
from .recipe import load_recipe
from .validate.divergence import PROBES, THRESHOLD_DB, divergence
from .validate.report_quant import divergence_markdown

DIAGNOSE_SAMPLES = 8


def rebuild(root: Path) -> tuple[ModelBundle, torch.nn.Module, DataSet]:
    """(bundle with the FP32 model, simulated INT8 model, validation data) of a run directory."""
    from .pipeline import load_weights
    from .quant.encodings import EncodingSet
    from .quant.fakequant import apply_encodings, wrap_layers
    from .transforms.apply import apply_transforms, transform_probe

    if not (root / "recipe.yaml").is_file() or not (root / "encodings.json").is_file():
        raise ModelError(f"'{root}' is not an edgekit run directory with int8 encodings (recipe.yaml, encodings.json)")
    recipe = load_recipe(root / "recipe.yaml")
    bundle = load_model(replace(recipe.model, weights=None), recipe.inputs)
    val = load_data(recipe.validation_data(), bundle, "validation")
    probe = transform_probe(val)
    quiet = lambda *_: None  # noqa: E731
    apply_transforms(recipe, bundle, "train", probe, quiet)
    trained = root / "model" / "weights.pt"
    if trained.is_file():
        load_weights(bundle, str(trained))
    elif recipe.model.weights:
        load_weights(bundle, recipe.model.weights)
    apply_transforms(recipe, bundle, "deploy", probe, quiet)
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
    meta = json.loads((art / "artifact.json").read_text())
    if meta["runtime"] not in PROBES:
        raise RecipeError(
            f"{target}: its runtime '{meta['runtime']}' cannot expose intermediate outputs here; "
            f"diagnose a target run by {' or '.join(PROBES.names())} (e.g. --target onnx)"
        )
    bundle, sim, val = rebuild(root)
    data = DataSet(
        {k: v[:samples] for k, v in val.inputs.items()},
        None if val.labels is None else val.labels[:samples],
        val.description,
    )
    names = [s.name for s in bundle.inputs]
    result = divergence(art, meta, sim, bundle.module, names, data, threshold_db)
    write_file(written[0], json.dumps(result, indent=1), force=True)
    write_file(written[1], "\n".join(divergence_markdown(result)) + "\n", force=True)
    return result


def diagnose_failures(
    root: Path, rows: list[dict[str, Any]], sim: torch.nn.Module, bundle: ModelBundle, val: DataSet, log: Any = print
) -> list[dict[str, Any]]:
    """For each int8 row over budget whose runtime exposes layer outputs, the per-layer divergence (first
    ``DIAGNOSE_SAMPLES`` validation samples); a failing row whose runtime cannot gets a note naming one that can."""
    out = []
    for r in rows:
        if r.get("status") != "fail" or r.get("precision") != "int8" or r.get("quantizer") in (None, "native"):
            continue
        if r["quantizer"] != "edgekit":
            r["notes"].append(f"per-layer divergence needs edgekit's own encodings ({r['quantizer']} program)")
            continue
        art = root / r["artifact"]
        meta = json.loads((art / "artifact.json").read_text())
        if meta["runtime"] not in PROBES:
            r["notes"].append(
                f"per-layer divergence needs a runtime that exposes layer outputs ({', '.join(PROBES.names())}); "
                "see the onnx/openvino rows' diagnosis, or `edgekit diagnose RUN --target onnx`"
            )
            continue
        n = min(len(val), DIAGNOSE_SAMPLES)
        data = DataSet(
            {k: v[:n] for k, v in val.inputs.items()}, None if val.labels is None else val.labels[:n], val.description
        )
        names = [s.name for s in bundle.inputs]
        result = divergence(art, meta, sim, bundle.module, names, data)
        log(f"diagnose {r['target']} int8: {result['verdict']}")
        r["notes"].append(f"per-layer divergence: {result['verdict']}")
        out.append(result)
    return out
