"""The standalone artifact runner: a directory that needs only numpy and one runtime (onnxruntime, openvino,
ai-edge-litert or tflite_runtime, executorch, coremltools on macOS, tensorrt + cuda-python on NVIDIA GPUs).

It imports nothing from edgekit, so the directory alone can be copied to a device and run there
(``python runner ARTIFACT_DIR ...``, see :mod:`.cli`); edgekit itself uses it in-process (validation) and as a
subprocess (latency, so peak RSS is the runtime's, not PyTorch's). Every module keeps to Python 3.8 syntax:
device images (Jetson, Raspberry Pi OS) ship old interpreters.

- :mod:`.common`: the schema, the missing-runtime error, runtime imports, dtypes, ``artifact.json``
- :mod:`.cpu_sessions`, :mod:`.coreml_session`, :mod:`.trt_session`: one session class per runtime (and the
  TensorRT engine build)
- :mod:`.opening`: the session for an artifact, synthetic inputs
- :mod:`.measure`: the benchmark record (latency, memory, machine, accuracy set)
- :mod:`.cli`: the command line, errors as JSON
"""

from __future__ import annotations

from .cli import error_json, main
from .common import ACCURACY_FILE, NATIVE_RUNTIME, SCHEMA, TOOL, MissingRuntime, _dtype, read_meta
from .coreml_session import CoreMLSession
from .cpu_sessions import ExecuTorchSession, LiteRTSession, OpenVINOSession, OrtSession
from .measure import accuracy, benchmark, device_info, latency_stats, peak_rss_mb
from .opening import BACKENDS, choose_runtime, concrete_shape, load, synthetic_inputs
from .trt_session import EngineBuildError, TensorRTSession, build_engine

__all__ = [
    "ACCURACY_FILE",
    "BACKENDS",
    "NATIVE_RUNTIME",
    "SCHEMA",
    "TOOL",
    "CoreMLSession",
    "EngineBuildError",
    "ExecuTorchSession",
    "LiteRTSession",
    "MissingRuntime",
    "OpenVINOSession",
    "OrtSession",
    "TensorRTSession",
    "_dtype",
    "accuracy",
    "benchmark",
    "build_engine",
    "choose_runtime",
    "concrete_shape",
    "device_info",
    "error_json",
    "latency_stats",
    "load",
    "main",
    "peak_rss_mb",
    "read_meta",
    "synthetic_inputs",
]
