#!/usr/bin/env python3
"""Standalone artifact runner: needs only numpy and one runtime (onnxruntime, openvino or ai-edge-litert).

Loads one compiled artifact directory (``artifact.json`` + model files written by edgekit), runs warm-up
plus timed iterations, and prints JSON. This file imports nothing from edgekit so it can be copied to a
device on its own; edgekit itself uses it both in-process (validation) and as a subprocess (latency, so
peak RSS is the runtime's, not PyTorch's).

    python runner.py ARTIFACT_DIR [--warmup 20] [--iterations 200] [--threads 2] [--batch 1] [--inputs x.npz]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

SCHEMA = "edgekit-bench/1"
_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


class OrtSession:
    runtime = "onnxruntime"

    def __init__(self, path: Path, meta: dict, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path / meta["file"]), opts, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.settings = {"providers": ["CPUExecutionProvider"], "intra_op_num_threads": threads}

    def run(self, feeds: dict) -> np.ndarray:
        return self.session.run(None, feeds)[0]


class OpenVINOSession:
    runtime = "openvino"

    def __init__(self, path: Path, meta: dict, threads: int):
        import openvino as ov

        core = ov.Core()
        hint = meta.get("options", {}).get("inference_precision", "f32")
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        self.compiled = core.compile_model(str(path / meta["file"]), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()
        self.settings = {
            "device": "CPU",
            "inference_precision": _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
        }

    def run(self, feeds: dict) -> np.ndarray:
        return np.array(self.request.infer(feeds)[0], copy=True)


class LiteRTSession:
    """ai-edge-litert's Interpreter (or tflite_runtime on old boards). Quantized int8 inputs/outputs are
    converted with the scales stored in the file; a batch larger than the file's static batch is looped."""

    runtime = "litert"

    def __init__(self, path: Path, meta: dict, threads: int):
        try:
            import ai_edge_litert as lib
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tflite_runtime as lib
            from tflite_runtime.interpreter import Interpreter
        self.it = Interpreter(model_path=str(path / meta["file"]), num_threads=threads)
        self.it.allocate_tensors()
        self.inputs = {d["name"]: d for d in self.it.get_input_details()}
        self.order = [spec["name"] for spec in meta["inputs"]]
        # LiteRT names inputs after the signature ("serving_default_args_0" ...): map them by position.
        self.details = sorted(self.it.get_input_details(), key=lambda d: d["index"])
        self.output = self.it.get_output_details()[0]
        self.version = getattr(lib, "__version__", "unknown")
        self.settings = {"num_threads": threads, "input_dtypes": [str(d["dtype"].__name__) for d in self.details]}

    @staticmethod
    def _to_file(value: np.ndarray, detail: dict) -> np.ndarray:
        dtype = detail["dtype"]
        scale, zero = detail["quantization"]
        if dtype in (np.int8, np.uint8) and scale:
            info = np.iinfo(dtype)
            return np.clip(np.rint(value / scale) + zero, info.min, info.max).astype(dtype)
        return value.astype(dtype)

    def _one(self, feeds: dict) -> np.ndarray:
        for name, detail in zip(self.order, self.details):
            if tuple(feeds[name].shape[1:]) != tuple(detail["shape"][1:]):
                raise RuntimeError(
                    f"input '{name}' has shape {list(feeds[name].shape)} but this .tflite has static "
                    f"shape {detail['shape'].tolist()}: feed data of the sequence length/size it was "
                    "converted with"
                )
            self.it.set_tensor(detail["index"], self._to_file(feeds[name], detail))
        self.it.invoke()
        out = self.it.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        if out.dtype in (np.int8, np.uint8) and scale:
            return (out.astype(np.float32) - zero) * scale
        return out.copy()

    def run(self, feeds: dict) -> np.ndarray:
        batch = len(next(iter(feeds.values())))
        fixed = int(self.details[0]["shape"][0])
        if batch == fixed:
            return self._one(feeds)
        return np.concatenate(
            [self._one({k: v[i : i + fixed] for k, v in feeds.items()}) for i in range(0, batch, fixed)]
        )


def _type_name(value: object) -> str:
    """OpenVINO returns element types as objects; report them as 'f32', 'bf16', ..."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


BACKENDS = {"onnxruntime": OrtSession, "openvino": OpenVINOSession, "litert": LiteRTSession}


def read_meta(path: Path) -> dict:
    meta_file = Path(path) / "artifact.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not an edgekit artifact directory (no artifact.json)")
    return json.loads(meta_file.read_text())


def load(path: str | Path, threads: int = 2):
    """Open the artifact in its runtime; raises ImportError naming the runtime when it is missing."""
    path = Path(path)
    meta = read_meta(path)
    runtime = meta["runtime"]
    if runtime not in BACKENDS:
        raise RuntimeError(f"artifact runtime '{runtime}' cannot run here (runner knows {sorted(BACKENDS)})")
    return BACKENDS[runtime](path, meta, threads)


def synthetic_inputs(meta: dict, batch: int, sequence: int, seed: int = 0) -> dict:
    """Seeded inputs with the declared shapes: latency does not depend on values, only on shapes/dtypes."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in meta["inputs"]:
        sizes = {"batch": batch, "sequence": sequence}
        shape = [d if isinstance(d, int) else sizes.get(d, 1) for d in spec["shape"]]
        dtype = _DTYPES[spec["dtype"]]
        if spec["dtype"].startswith("float"):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif spec["name"] == "attention_mask":
            feeds[spec["name"]] = np.ones(shape, dtype=dtype)
        else:
            feeds[spec["name"]] = rng.integers(0, 1000, size=shape).astype(dtype)
    return feeds


def peak_rss_mb() -> float | None:
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


def benchmark(
    path: str | Path,
    warmup: int = 20,
    iterations: int = 200,
    threads: int = 2,
    batch: int = 1,
    sequence: int = 64,
    inputs: str | None = None,
) -> dict:
    path = Path(path)
    meta = read_meta(path)
    t0 = time.perf_counter()
    session = load(path, threads)
    load_ms = (time.perf_counter() - t0) * 1000
    if inputs:
        with np.load(inputs) as z:
            feeds = {s["name"]: z[s["name"]][:batch] for s in meta["inputs"]}
    else:
        feeds = synthetic_inputs(meta, batch, sequence)
    for _ in range(warmup):
        session.run(feeds)
    times = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        session.run(feeds)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return {
        "schema": SCHEMA,
        "artifact": str(path),
        "target": meta["target"],
        "precision": meta["precision"],
        "runtime": session.runtime,
        "runtime_version": session.version,
        "settings": session.settings,
        "warmup": warmup,
        "iterations": iterations,
        "threads": threads,
        "batch": batch,
        "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
        **latency_stats(times, batch),
        "load_ms": load_ms,
        "peak_rss_mb": peak_rss_mb(),
        "device": {
            "hostname": platform.node(),
            "machine": platform.machine(),
            "system": platform.system(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--sequence", type=int, default=64)
    p.add_argument("--inputs", help=".npz with one array per input name")
    a = p.parse_args(argv)
    try:
        result = benchmark(a.artifact, a.warmup, a.iterations, a.threads, a.batch, a.sequence, a.inputs)
    except (ImportError, RuntimeError, FileNotFoundError) as exc:
        print(json.dumps({"schema": SCHEMA, "error": f"{type(exc).__name__}: {exc}"}))
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
