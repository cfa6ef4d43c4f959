"""TFLite ``benchmark_model`` (desktop, Android via adb shell, or its logcat) output -> ``edgekit-bench/1``.

The documented format (tensorflow/lite/tools/benchmark), timings in microseconds::

    INFO: Num threads: [4]
    INFO: Graph: [/data/local/tmp/model.tflite]
    INFO: Initialized session in 17.187ms.
    INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
    INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112
    INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
    INFO: count=50 first=266601 curr=266931 min=265837 max=268116 avg=266473 std=419 p5=... median=... p95=...
    INFO: Inference timings in us: Init: 20283, First inference: 339304, Warmup (avg): 302814, Inference (avg): 266473
    INFO: Peak memory footprint (MB): init=3.01 overall=23.9

The first ``count=`` line is the warm-up, the one after the last "Running benchmark" line the timed runs.
``p5/median/p95`` appear in newer releases only; older ones print ``count=N curr=X(all same)`` for identical
runs and "Average inference timings in us: Warmup: .., Init: .., Inference: .." instead.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import DeviceError
from .common import NUMBER, first, last, record

TOOL = "benchmark_model"
_PAIR = re.compile(rf"(\w+)=({NUMBER})")


def _stats(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in _PAIR.findall(line)}


def _stat_lines(text: str) -> list[tuple[int, dict[str, float]]]:
    """(offset, values) of each run-statistics line; op-profiling summaries ("Timings (microseconds): count=",
    "Memory (bytes): count=") are other statistics and are left out."""
    out = []
    for m in re.finditer(r"^.*\bcount=\d+.*$", text, re.MULTILINE):
        line = m.group(0)
        if "Timings" in line or "Memory" in line:
            continue
        out.append((m.start(), _stats(line[line.index("count=") :])))
    return out


def looks_like(text: str) -> bool:
    return "Inference timings in us" in text or ("Running benchmark for at least" in text and "count=" in text)


def parse(text: str, source: str = "benchmark_model output") -> dict[str, Any]:
    stats = _stat_lines(text)
    runs = [m.start() for m in re.finditer(r"Running benchmark for at least", text)]
    timed = [s for pos, s in stats if not runs or pos > runs[-1]]
    warm = [s for pos, s in stats if len(runs) > 1 and runs[0] < pos < runs[-1]]
    summary = first(
        rf"Inference timings in us: Init: ({NUMBER}), First inference: ({NUMBER}), "
        rf"Warmup \(avg\): ({NUMBER}), Inference \(avg\): ({NUMBER})",
        text,
    )
    old = first(rf"Average inference timings in us: Warmup: ({NUMBER}), Init: ({NUMBER}),.*?({NUMBER})\s*$", text)
    if not timed and not summary and not old:
        raise DeviceError(
            f"{source} is not TFLite benchmark_model output (no 'count=...' statistics line and no "
            "'Inference timings in us' line); pass --tool to name the tool that wrote it"
        )
    s = timed[-1] if timed else {}
    ms = {k: v / 1000 for k, v in s.items() if k != "count"}
    if "avg" not in ms and "curr" in ms:  # "count=N curr=X(all same)": every run took X
        ms.update(avg=ms["curr"], min=ms["curr"], max=ms["curr"], std=0.0)
    mean = ms.get("avg") or (float(summary.group(4)) / 1000 if summary else float(old.group(3)) / 1000)
    init = summary.group(1) if summary else (old.group(2) if old else None)
    session = first(rf"Initialized session in ({NUMBER})\s*ms", text)
    threads = last(r"Num threads: \[(-?\d+)\]", text) or last(r"#threads used for CPU inference: \[(-?\d+)\]", text)
    graph = first(r"Graph: \[([^\]]+)\]", text)
    peak = last(rf"Peak memory footprint \(MB\): init=({NUMBER}) overall=({NUMBER})", text)
    delta = last(rf"Memory footprint delta from the start of the tool \(MB\): init=({NUMBER}) overall=({NUMBER})", text)
    size = first(rf"The input model file size \(MB\): ({NUMBER})", text)
    tool_stats = {
        "p5_ms": ms.get("p5"),
        "p95_ms": ms.get("p95"),
        "first_run_ms": ms.get("first"),
        "first_inference_ms": float(summary.group(2)) / 1000 if summary else None,
        "warmup_avg_ms": float(summary.group(3)) / 1000 if summary else None,
        "memory_delta_mb": float(delta.group(2)) if delta else None,
        "model_size_mb": float(size.group(1)) if size else None,
    }
    return record(
        TOOL,
        artifact=graph.group(1) if graph else source,
        target="tflite",
        runtime="tflite",
        settings={"delegates": sorted(set(re.findall(r"Created TensorFlow Lite (\w+) delegate", text)))},
        warmup=int(warm[-1]["count"]) if warm and "count" in warm[-1] else None,
        iterations=int(s["count"]) if "count" in s else None,
        threads=int(threads.group(1)) if threads else None,
        p50_ms=ms.get("median"),
        mean_ms=mean,
        std_ms=ms.get("std"),
        min_ms=ms.get("min"),
        max_ms=ms.get("max"),
        throughput_per_s=1000.0 / mean if mean else None,
        load_ms=float(init) / 1000 if init is not None else (float(session.group(1)) if session else None),
        peak_rss_mb=float(peak.group(2)) if peak else None,
        tool_stats={k: v for k, v in tool_stats.items() if v is not None},
    )
