"""The record every parser fills: the runner's ``edgekit-bench/1`` keys, None where a tool does not say."""

from __future__ import annotations

import re
from typing import Any

from .. import runner

DEVICE_KEYS = ("hostname", "machine", "system", "release", "processor", "cpu_count", "memory_mb", "python", "numpy")
LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "throughput_per_s")
RECORD_KEYS = (
    "schema",
    "tool",
    "artifact",
    "target",
    "precision",
    "runtime",
    "runtime_version",
    "settings",
    "warmup",
    "iterations",
    "time_budget_s",
    "threads",
    "batch",
    "input_shapes",
    *LATENCY_KEYS,
    "load_ms",
    "peak_rss_mb",
    "accuracy",
    "tool_stats",
    "device",
)

NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def empty_device() -> dict[str, Any]:
    return dict.fromkeys(DEVICE_KEYS)


def record(tool: str, **fields: Any) -> dict[str, Any]:
    """A full record: every schema key present (same keys as the runner's), unknown values None."""
    unknown = set(fields) - set(RECORD_KEYS)
    if unknown:
        raise KeyError(f"not edgekit-bench/1 keys: {sorted(unknown)}")
    out: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    out.update(schema=runner.SCHEMA, tool=tool, settings={}, tool_stats={}, device=empty_device())
    out.update(fields)
    return out


def first(pattern: str, text: str, flags: int = re.MULTILINE) -> re.Match[str] | None:
    return re.search(pattern, text, flags)


def last(pattern: str, text: str, flags: int = re.MULTILINE) -> re.Match[str] | None:
    found = None
    for found in re.finditer(pattern, text, flags):  # noqa: B007  (the last match is the result)
        pass
    return found
