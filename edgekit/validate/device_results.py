"""The device results file format (``DIR/devices/<device>.json``): written by ``edgekit bench --device``,
read by the device report. It lives in the validate layer so the report can read saved results without
importing the device package (which sits above validate and renders its reports with it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = "edgekit-device-results/1"


def _results_files(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(data, dict) and data.get("schema") == RESULTS_SCHEMA:
            out.append(data)
    return out


def load_saved(folder: Path) -> list[dict[str, Any]]:
    """Entries of every device results file in ``folder`` (what earlier bench runs saved)."""
    return [e for data in _results_files(folder) for e in data["entries"]]


def is_results_folder(folder: Path) -> bool:
    """A folder earlier ``edgekit bench --device`` runs wrote (new devices are merged into it)."""
    return folder.is_dir() and bool(_results_files(folder))
