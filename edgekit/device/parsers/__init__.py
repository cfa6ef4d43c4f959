"""Parsers for the standard benchmark tools' outputs, keyed by tool name; each returns an ``edgekit-bench/1``
record with the runner's keys, so ``edgekit report --ingest FILE`` puts them in the same tables."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ...errors import DeviceError, did_you_mean

# tool name -> module in this package (imported when used)
PARSERS = {"benchmark_app": "benchmark_app", "benchmark_model": "benchmark_model", "trtexec": "trtexec"}


def _module(tool: str) -> Any:
    if tool not in PARSERS:
        raise DeviceError(f"unknown benchmark tool '{tool}'{did_you_mean(tool, PARSERS)}")
    return importlib.import_module(f".{PARSERS[tool]}", __name__)


def detect(text: str, source: str) -> str:
    for tool in PARSERS:
        if _module(tool).looks_like(text):
            return tool
    raise DeviceError(
        f"cannot tell which tool wrote {source}; pass --tool ({', '.join(PARSERS)}): expected benchmark_app's log "
        "or -json_stats report, benchmark_model's output, or trtexec --exportTimes JSON"
    )


def parse(text: str, tool: str | None = None, source: str = "input") -> dict[str, Any]:
    name = tool or detect(text, source)
    try:
        return _module(name).parse(text, source)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:  # a value of the wrong kind
        raise DeviceError(
            f"{source}: not a {name} output edgekit can read ({type(exc).__name__}: {exc}); "
            "pass the file the tool wrote, unedited"
        ) from None


def ingest(path: str | Path, tool: str | None = None) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise DeviceError(f"--ingest {p}: no such file")
    return parse(p.read_text(errors="replace"), tool, p.name)
