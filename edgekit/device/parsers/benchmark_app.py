"""OpenVINO ``benchmark_app`` (Python or C++) -> ``edgekit-bench/1``: its console log, or the JSON statistics
report it writes with ``-report_type no_counters -report_folder DIR -json_stats``.

The console log ends with (latencies in ms, or in us when the average is below 1 ms)::

    [ INFO ] Execution Devices:['CPU']
    [ INFO ] Count:            200 iterations
    [ INFO ] Duration:         710.31 ms
    [ INFO ] Latency:
    [ INFO ]    Median:        3.26 ms          ("90 percentile:" instead with -latency_percentile 90)
    [ INFO ]    Average:       3.48 ms
    [ INFO ]    Min:           0.88 ms
    [ INFO ]    Max:           10.86 ms
    [ INFO ] Throughput:   281.57 FPS

benchmark_app reports no standard deviation and one percentile only; the rest stay None. Its
"memory usage: Peak" lines are VmPeak (virtual memory), not resident memory, so peak RSS stays None too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...errors import DeviceError
from .common import LATENCY_KEYS, NUMBER, first, last, record

TOOL = "benchmark_app"
_PERCENTILE_KEY = {50: "p50_ms", 90: "p90_ms", 99: "p99_ms"}
_CONFIG_KEYS = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT")


def looks_like(text: str) -> bool:
    return ("Throughput:" in text and "FPS" in text) or '"execution_results"' in text


def _ms(value: str, unit: str) -> float:
    return float(value) / 1000 if unit == "us" else float(value)


def _latency_block(text: str) -> dict[str, float]:
    """The overall "Latency:" block (not the per-shape groups that may follow it)."""
    start = text.find("Latency:")
    if start < 0:
        return {}
    out: dict[str, float] = {}
    for line in text[start:].splitlines()[1:6]:
        m = re.search(rf"(Median|Average|Min|Max|\d+ percentile):\s+({NUMBER})\s*(ms|us)", line)
        if not m:
            break
        label = m.group(1)
        key = {"Median": "p50_ms", "Average": "mean_ms", "Min": "min_ms", "Max": "max_ms"}.get(label)
        if key is None:
            key = _PERCENTILE_KEY.get(int(label.split()[0]), f"p{label.split()[0]}_ms")
        out[key] = _ms(m.group(2), m.group(3))
    return out


def _input_shapes(text: str) -> dict[str, list[int]] | None:
    """Static input shapes from the last "Model inputs:" block ("name (node: n) : f32 / [N,C] / [1,16]")."""
    blocks = text.split("Model inputs:")
    if len(blocks) < 2:
        return None
    shapes = {}
    for line in blocks[-1].splitlines()[1:]:
        m = re.search(r"\]\s+(\S+) \(node: [^)]*\) : \w+ / \[[^\]]*\] / \[([^\]]*)\]", line)
        if not m:
            break
        dims = m.group(2).split(",")
        if not all(d.strip().isdigit() for d in dims):
            return None
        shapes[m.group(1)] = [int(d) for d in dims]
    return shapes or None


def _split(lat: dict[str, float | None]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Schema latency keys, and the rest (a percentile other than 50/90/99) for tool_stats."""
    return {k: v for k, v in lat.items() if k in LATENCY_KEYS}, {k: v for k, v in lat.items() if k not in LATENCY_KEYS}


def parse_log(text: str, source: str) -> dict[str, Any]:
    lat, extra = _split(_latency_block(text))
    fps = last(rf"Throughput:\s+({NUMBER})\s*FPS", text)
    if not lat and not fps:
        raise DeviceError(
            f"{source} is not OpenVINO benchmark_app output (no 'Latency:' block, no 'Throughput: .. FPS' line); "
            "pass --tool to name the tool that wrote it"
        )
    config = {k: m.group(1).strip() for k in _CONFIG_KEYS if (m := first(rf"^\[ INFO \]\s+{k}: (.*)$", text))}
    version = first(r"Build \.+ (\S+)", text)
    read, compiled = first(rf"Read model took ({NUMBER}) ms", text), first(rf"Compile model took ({NUMBER}) ms", text)
    count = last(r"Count:\s+(\d+) iterations", text)
    duration = last(rf"Duration:\s+({NUMBER}) ms", text)
    mode = first(r"Start inference (a?synchronously)", text)
    devices = last(r"Execution Devices:\s*(.*)$", text)
    batch = first(r"Model batch size: (\d+)", text)
    first_inf = first(rf"First inference took ({NUMBER}) ms", text)
    threads = config.get("INFERENCE_NUM_THREADS")
    settings = {
        "api": {"synchronously": "sync", "asynchronously": "async"}.get(mode.group(1)) if mode else None,
        "execution_devices": devices.group(1).strip() if devices else None,
        "streams": config.get("NUM_STREAMS"),
        "performance_hint": config.get("PERFORMANCE_HINT"),
        "inference_precision": config.get("INFERENCE_PRECISION_HINT"),
    }
    load = sum(float(m.group(1)) for m in (read, compiled) if m) if compiled else None
    return record(
        TOOL,
        artifact=source,
        target="openvino",
        runtime="openvino",
        runtime_version=version.group(1) if version else None,
        settings={k: v for k, v in settings.items() if v is not None},
        iterations=int(count.group(1)) if count else None,
        threads=int(threads) if threads and threads.isdigit() else None,
        batch=int(batch.group(1)) if batch else None,
        input_shapes=_input_shapes(text),
        throughput_per_s=float(fps.group(1)) if fps else None,
        load_ms=load,
        tool_stats={
            k: v
            for k, v in {
                "first_inference_ms": float(first_inf.group(1)) if first_inf else None,
                "duration_ms": float(duration.group(1)) if duration else None,
                **extra,
            }.items()
            if v is not None
        },
        **lat,
    )


def parse_json_stats(data: dict[str, Any], source: str) -> dict[str, Any]:
    res, setup, cmd = (
        data.get("execution_results", {}),
        data.get("configuration_setup", {}),
        data.get("cmd_options", {}),
    )

    def num(key: str) -> float | None:
        return float(res[key]) if res.get(key) not in (None, "") else None

    lat = {"mean_ms": num("avg latency"), "min_ms": num("min latency"), "max_ms": num("max latency")}
    for key in res:
        m = re.fullmatch(r"latency(?: \((\d+) percentile\))? \(ms\)", key)
        if m:
            pct = int(m.group(1) or 50)
            lat[_PERCENTILE_KEY.get(pct, f"p{pct}_ms")] = num(key)
    lat, extra = _split(lat)
    load = [num("read model time (ms)"), num("compile model time (ms)")]
    iterations = num("total number of iterations")
    return record(
        TOOL,
        artifact=cmd.get("-m", source),
        target="openvino",
        runtime="openvino",
        settings={"device": setup.get("target device"), "api": setup.get("API")},
        iterations=int(iterations) if iterations is not None else None,
        batch=int(setup["batch size"]) if str(setup.get("batch size", "")).isdigit() else None,
        throughput_per_s=num("throughput"),
        load_ms=sum(v for v in load if v is not None) if load[1] is not None else None,
        tool_stats={"first_inference_ms": num("first inference time (ms)"), **extra},
        **lat,
    )


def parse(text: str, source: str = "benchmark_app output") -> dict[str, Any]:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "execution_results" in data:
            return parse_json_stats(data, source)
    return parse_log(text, source)
