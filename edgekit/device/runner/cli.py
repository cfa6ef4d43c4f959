"""Standalone artifact runner: needs only numpy and one runtime (onnxruntime, openvino, ai-edge-litert or
tflite_runtime, executorch, coremltools on macOS, tensorrt + cuda-python on NVIDIA GPUs).

Loads one compiled artifact directory (``artifact.json`` + model files written by edgekit), runs warm-up plus
N timed iterations (or timed iterations for a time budget), optionally an accuracy set shipped with the
artifact (``accuracy.npz``: one array per input name, ``reference`` outputs, optional ``labels``), and prints
one JSON object (schema ``edgekit-bench/1``). The runner imports nothing from edgekit so its directory can be copied
to a device on its own (edgekit's ssh transport does exactly that); edgekit itself uses it in-process
(validation) and as a subprocess (latency, so peak RSS is the runtime's, not PyTorch's).

    python runner ARTIFACT_DIR [--warmup 20] [--iterations 200 | --time SECONDS] [--threads 2] [--batch 1]
                     [--inputs x.npz] [--accuracy accuracy.npz | --no-accuracy] [--runtime native|NAME]

On failure it prints ``{"schema": ..., "error": ..., "missing_module": ..., "fix": ...}`` and exits 3.
It keeps to Python 3.8 syntax: device images (Jetson, Raspberry Pi OS) ship old interpreters.
"""

from __future__ import annotations

import argparse
import json

from .common import ACCURACY_FILE, SCHEMA, MissingRuntime, np
from .measure import benchmark


def error_json(exc: BaseException) -> dict:
    missing = isinstance(exc, MissingRuntime)
    return {
        "schema": SCHEMA,
        "error": f"{type(exc).__name__}: {exc}",
        "missing_module": exc.module if missing else None,
        "fix": exc.pip if missing else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--time", type=float, default=None, help="time budget in seconds (replaces --iterations)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--sequence", type=int, default=64)
    p.add_argument("--inputs", help=".npz with one array per input name")
    p.add_argument("--accuracy", help=f".npz accuracy set (default: the artifact's {ACCURACY_FILE} if present)")
    p.add_argument("--no-accuracy", action="store_true", help="skip the artifact's accuracy set")
    p.add_argument("--runtime", help="'native' (the runtime of the artifact's real device) or a runtime name")
    a = p.parse_args(argv)
    if np is None:
        print(json.dumps(error_json(MissingRuntime("numpy", "pip install numpy"))))
        return 3
    try:
        result = benchmark(
            a.artifact,
            a.warmup,
            a.iterations,
            a.threads,
            a.batch,
            a.sequence,
            a.inputs,
            a.time,
            "" if a.no_accuracy else a.accuracy,
            a.runtime,
        )
    except Exception as exc:  # any runtime's own error type: reported, never a traceback on the device
        print(json.dumps(error_json(exc)))
        return 3
    print(json.dumps(result))
    return 0
