"""Opening an artifact: which runtime runs it (its own, or its device's native one), the session classes by
runtime name, and the synthetic inputs of its declared shapes."""

from __future__ import annotations

from pathlib import Path

from .common import NATIVE_RUNTIME, _dtype, np, read_meta
from .coreml_session import CoreMLSession
from .cpu_sessions import ExecuTorchSession, LiteRTSession, OpenVINOSession, OrtSession
from .trt_session import TensorRTSession

BACKENDS = {
    "onnxruntime": OrtSession,
    "openvino": OpenVINOSession,
    "litert": LiteRTSession,
    "coreml": CoreMLSession,
    "executorch": ExecuTorchSession,
    "tensorrt": TensorRTSession,
}


def choose_runtime(meta: dict, runtime: str | None = None) -> str:
    """``None``: the artifact's own runtime; ``native``: the one its real device runs; else that name."""
    if runtime in (None, "", "artifact"):
        return meta["runtime"]
    if runtime == "native":
        return NATIVE_RUNTIME.get(meta["target"], meta["runtime"])
    return runtime


def load(path: str | Path, threads: int = 2, runtime: str | None = None, shapes: dict | None = None):
    """Open the artifact in its runtime; raises MissingRuntime (an ImportError) naming the missing module."""
    path = Path(path)
    meta = read_meta(path)
    name = choose_runtime(meta, runtime)
    if name not in BACKENDS:
        raise RuntimeError(f"artifact runtime '{name}' cannot run here (runner knows {sorted(BACKENDS)})")
    if shapes is None:
        shapes = {k: list(v.shape) for k, v in synthetic_inputs(meta, 1, 64).items()}
    return BACKENDS[name](path, meta, threads, shapes)


def concrete_shape(spec: dict, batch: int, sequence: int) -> list:
    sizes = {"batch": batch, "sequence": sequence}
    return [d if isinstance(d, int) else sizes.get(d, 1) for d in spec["shape"]]


def synthetic_inputs(meta: dict, batch: int, sequence: int, seed: int = 0) -> dict:
    """Seeded inputs with the declared shapes: latency does not depend on values, only on shapes/dtypes."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in meta["inputs"]:
        shape = concrete_shape(spec, batch, sequence)
        dtype = _dtype(spec["dtype"])
        if spec["dtype"].startswith("float"):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif spec["name"] == "attention_mask":
            feeds[spec["name"]] = np.ones(shape, dtype=dtype)
        else:
            feeds[spec["name"]] = rng.integers(0, 1000, size=shape).astype(dtype)
    return feeds
