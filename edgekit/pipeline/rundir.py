"""A run directory's files: the trained weights a recipe names, and the reports and manifest a run writes (and
a later ``edgekit bench`` rewrites)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ..archs import ModelBundle
from ..artifacts import add_to_manifest, write_manifest
from ..checks import require_finite_weights
from ..errors import ModelError
from ..evaluate import passed
from ..recipe import Recipe
from ..validate.report import write_reports


def load_weights(bundle: ModelBundle, path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model.weights '{p}' does not exist (a training run writes RUN/model/weights.pt)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError) as exc:  # torch's own message would suggest weights_only=False
        raise ModelError(
            f"model.weights '{p}' is not a plain state_dict of tensors ({type(exc).__name__}); edgekit loads "
            "weights without running code: save them with torch.save(model.state_dict(), PATH)"
        ) from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"model.weights '{p}' cannot be read as a torch state_dict: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict):
        raise ModelError(f"model.weights '{p}' holds a {type(state).__name__}, not a state_dict (name -> tensor)")
    try:
        bundle.module.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"model.weights '{p}' does not fit this model (same architecture, config and "
            f"train-phase transforms?): {str(exc).splitlines()[0]}"
        ) from None
    require_finite_weights(bundle.module, f"model.weights '{p}'")
    bundle.info["weights"] = str(p.resolve())


def save_run(root: Path, report: dict[str, Any], recipe: Recipe) -> None:
    """Write report.json/.md/.html and manifest.json (its results summary included) for a run directory."""
    report["passed"] = passed(report["rows"])
    write_reports(report, root)
    summary = [{k: r.get(k) for k in ("target", "precision", "status", "delta")} for r in report["rows"]]
    write_manifest(
        root, {"recipe": recipe.to_dict(), "io": report["io"], "results": {"passed": report["passed"], "rows": summary}}
    )


def update_run(root: Path, report: dict[str, Any]) -> None:
    """Rewrite a finished run's reports (``edgekit bench DIR``) and record only those files anew in its manifest:
    the artifacts' hashes stay the ones recorded when they were built."""
    report["passed"] = passed(report["rows"])
    write_reports(report, root)
    add_to_manifest(root, [p for p in sorted(root.glob("report.*")) if p.is_file()] + sorted(root.glob("plots/*")))
