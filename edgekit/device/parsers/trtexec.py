"""``trtexec --exportTimes=FILE`` -> ``edgekit-bench/1``.

The file is a JSON list with one object per timed inference (warm-ups excluded), times in ms::

    [ { "startEnqMs" : 0.1, "endEnqMs" : 0.2, "startH2dMs" : 0.2, "endH2dMs" : 0.3,
        "startComputeMs" : 0.3, "endComputeMs" : 1.4, "startD2hMs" : 1.4, "endD2hMs" : 1.5,
        "h2dMs" : 0.1, "computeMs" : 1.1, "d2hMs" : 0.1, "latencyMs" : 1.3, "endToEndMs" : 1.4 }, ... ]

(TensorRT 7 named the copies ``startInMs``/``inMs``/``outMs``.) ``latencyMs`` (host-to-device copy + GPU
compute + device-to-host copy, trtexec's "Latency") is the latency here, the same span the runner times
for a TensorRT engine; the GPU compute time alone goes to ``tool_stats``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ...errors import DeviceError
from .. import runner
from .common import record

TOOL = "trtexec"
_STARTS = ("startEnqMs", "startH2dMs", "startInMs", "startComputeMs")
_ENDS = ("endD2hMs", "endOutMs", "endComputeMs")


def looks_like(text: str) -> bool:
    return text.lstrip().startswith("[") and "latencyMs" in text


def _span_ms(trace: list[dict[str, Any]]) -> float | None:
    start = next((k for k in _STARTS if k in trace[0]), None)
    end = next((k for k in _ENDS if k in trace[0]), None)
    if start is None or end is None:
        return None
    span = max(t[end] for t in trace) - min(t[start] for t in trace)
    return span if span > 0 else None


def _is_time(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def parse(text: str, source: str = "trtexec --exportTimes file") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeviceError(f"{source} is not trtexec --exportTimes JSON ({exc.msg} at line {exc.lineno})") from None
    trace = [t for t in data if isinstance(t, dict) and "latencyMs" in t] if isinstance(data, list) else []
    if not trace:
        raise DeviceError(
            f"{source} holds no inference with 'latencyMs': expected the file written by trtexec --exportTimes=FILE"
        )
    for i, t in enumerate(trace):
        bad = [k for k, v in t.items() if k.endswith("Ms") and not _is_time(v)]
        if bad:
            raise DeviceError(
                f"{source}: inference {i} has '{bad[0]}' = {t[bad[0]]!r}, not a time in ms; "
                "pass the file trtexec --exportTimes wrote, unedited"
            )
    stats = runner.latency_stats([float(t["latencyMs"]) for t in trace], 1)
    span = _span_ms(trace)
    if span:  # trtexec's throughput: inferences over the wall-clock span, not 1/mean (enqueues overlap)
        stats["throughput_per_s"] = 1000.0 * len(trace) / span
    tool_stats: dict[str, Any] = {}
    if all("computeMs" in t for t in trace):
        compute = runner.latency_stats([float(t["computeMs"]) for t in trace], 1)
        tool_stats.update({f"gpu_compute_{k}": compute[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")})
    if all("endToEndMs" in t for t in trace):
        tool_stats["end_to_end_p50_ms"] = float(np.percentile([t["endToEndMs"] for t in trace], 50))
    return record(
        TOOL,
        artifact=source,
        target="tensorrt",
        runtime="tensorrt",
        iterations=len(trace),
        batch=None,
        tool_stats=tool_stats,
        **stats,
    )
