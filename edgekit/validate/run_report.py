"""A run's ``report.json``: its schema version, the typed shape of a row, and the one reader every command that
takes a run directory uses (``edgekit validate`` / ``bench`` / ``results`` / the device report).

Reports written before the schema was versioned have no ``schema`` key and read as schema 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from ..errors import EdgekitError, ModelError

REPORT_SCHEMA = 1


class Latency(TypedDict, total=False):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


class Row(TypedDict, total=False):
    """One target x precision of a run: ``status`` (edgekit.status.Status) and ``notes`` always; the numbers
    only for an artifact that was built and validated."""

    target: str
    precision: str
    status: str
    notes: list[str]
    quantizer: str | None
    artifact: str
    size_mb: float
    accuracy: dict[str, Any]
    delta: float
    within_budget: bool
    binary_weights: Any
    latency: Latency | None
    latency_note: str
    speedup: float | None
    stage: str  # the stage that raised, for an ``error`` row
    requested: bool  # the recipe named this target (``unsupported`` there fails the run)
    profile: str  # the quantization profile an INT8 artifact lowered


def read_report(
    root: Path, needs: tuple[str, ...] = ("recipe", "rows"), error: type[EdgekitError] = ModelError
) -> dict[str, Any]:
    """``root/report.json``, checked to be a report this edgekit reads and to hold the keys ``needs``; a missing,
    damaged or newer report raises ``error`` with one line naming the file and the fix."""
    path = Path(root) / "report.json"
    if not path.is_file():
        raise error(f"'{root}' is not an edgekit run directory (no report.json); run `edgekit run RECIPE` first")
    try:
        report = json.loads(path.read_text())
        if not isinstance(report, dict):
            raise TypeError(f"a {type(report).__name__}, not an object")
        missing = [k for k in needs if k not in report]
        if missing:
            raise KeyError(missing[0])
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{path} is damaged ({type(exc).__name__}: {exc}); rebuild the run") from None
    schema = report.get("schema", 1)
    if not isinstance(schema, int) or schema > REPORT_SCHEMA:
        raise error(
            f"{path} has report schema {schema!r}; this edgekit reads schema {REPORT_SCHEMA} and older: upgrade "
            "edgekit, or rebuild the run with this one"
        )
    return report
