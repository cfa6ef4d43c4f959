"""One benchmark: warm-up and timed runs (or a time budget), latency percentiles, peak memory, the machine,
and the accuracy set shipped with the artifact; the result is the ``edgekit-bench/1`` record."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .common import ACCURACY_FILE, SCHEMA, TOOL, _dtype, np, read_meta
from .opening import load, synthetic_inputs


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process image. VmHWM (Linux) resets at exec; ``ru_maxrss`` does not, so
    a runner started from a large parent (the PyTorch process that exported the model) would report the
    parent's peak instead of the runtime's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def latency_stats(times_ms: list[float], batch: int) -> dict:
    t = np.asarray(times_ms)
    return {
        "p50_ms": float(np.percentile(t, 50)),
        "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)),
        "mean_ms": float(t.mean()),
        "std_ms": float(t.std()),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
        "throughput_per_s": float(1000.0 * batch / t.mean()),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
            if out.stdout.strip():
                return out.stdout.strip()
        except OSError:
            pass
    return platform.processor()


def _memory_mb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def device_info() -> dict:
    """Who ran the benchmark: the same keys everywhere (values None where a platform cannot tell)."""
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def accuracy(session, meta: dict, file: Path, batch: int) -> dict:
    """Run the accuracy set and compare with its reference outputs (computed where the model was built).

    The file holds one array per input name, ``reference`` (the FP32 outputs) and optionally ``labels``."""
    names = [s["name"] for s in meta["inputs"]]
    with np.load(file) as z:
        missing = [n for n in [*names, "reference"] if n not in z.files]
        if missing:
            raise RuntimeError(f"accuracy set {file.name} lacks arrays {missing} (has {sorted(z.files)})")
        inputs = {s["name"]: z[s["name"]].astype(_dtype(s["dtype"])) for s in meta["inputs"]}
        reference = z["reference"]
        labels = z["labels"] if "labels" in z.files else None
    n = len(reference)
    outs = [session.run({k: v[i : i + batch] for k, v in inputs.items()}) for i in range(0, n, batch)]
    out = np.concatenate(outs).astype(np.float64).reshape(n, -1)
    ref = reference.astype(np.float64).reshape(n, -1)
    cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    classes = reference.ndim == 2 and reference.shape[1] > 1
    return {
        "file": file.name,
        "samples": int(n),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.abs(out - ref).max()),
        "agreement_pct": float((out.argmax(1) == ref.argmax(1)).mean() * 100) if classes else None,
        "top1_pct": float((out.argmax(1) == labels.reshape(-1)).mean() * 100)
        if classes and labels is not None
        else None,
    }


def benchmark(
    path: str | Path,
    warmup: int = 20,
    iterations: int = 200,
    threads: int = 2,
    batch: int = 1,
    sequence: int = 64,
    inputs: str | None = None,
    time_budget: float | None = None,
    accuracy_file: str | None = None,
    runtime: str | None = None,
) -> dict:
    """Benchmark one artifact. ``time_budget`` (seconds) replaces ``iterations`` with "as many timed runs as
    fit"; ``accuracy_file`` None means the artifact's own ``accuracy.npz`` when it ships one, "" means none."""
    path = Path(path)
    meta = read_meta(path)
    if inputs:
        with np.load(inputs) as z:
            feeds = {s["name"]: z[s["name"]][:batch].astype(_dtype(s["dtype"])) for s in meta["inputs"]}
    else:
        feeds = synthetic_inputs(meta, batch, sequence)
    t0 = time.perf_counter()
    session = load(path, threads, runtime, {k: list(v.shape) for k, v in feeds.items()})
    load_ms = (time.perf_counter() - t0) * 1000
    for _ in range(warmup):
        session.run(feeds)
    times = []
    deadline = time.perf_counter() + time_budget if time_budget else None
    while (len(times) < iterations) if deadline is None else (not times or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        session.run(feeds)
        times.append((time.perf_counter_ns() - start) / 1e6)
    if accuracy_file is None and (path / ACCURACY_FILE).is_file():
        accuracy_file = str(path / ACCURACY_FILE)
    return {
        "schema": SCHEMA,
        "tool": TOOL,
        "artifact": str(path),
        "target": meta["target"],
        "precision": meta["precision"],
        "runtime": session.runtime,
        "runtime_version": session.version,
        "settings": session.settings,
        "warmup": warmup,
        "iterations": len(times),
        "time_budget_s": time_budget,
        "threads": threads,
        "batch": batch,
        "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
        **latency_stats(times, batch),
        "load_ms": load_ms,
        "peak_rss_mb": peak_rss_mb(),
        "accuracy": accuracy(session, meta, Path(accuracy_file), batch) if accuracy_file else None,
        "tool_stats": None,  # numbers only another tool reports (edgekit report --ingest fills it)
        "device": device_info(),
    }
