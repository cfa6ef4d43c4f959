#!/usr/bin/env python3
"""Standalone artifact runner: needs only numpy and one runtime (onnxruntime, openvino, ai-edge-litert or
tflite_runtime, executorch, coremltools on macOS, tensorrt + cuda-python on NVIDIA GPUs).

Loads one compiled artifact directory (``artifact.json`` + model files written by edgekit), runs warm-up plus
N timed iterations (or timed iterations for a time budget), optionally an accuracy set shipped with the
artifact (``accuracy.npz``: one array per input name, ``reference`` outputs, optional ``labels``), and prints
one JSON object (schema ``edgekit-bench/1``). This file imports nothing from edgekit so it can be copied to a
device on its own (edgekit's ssh transport does exactly that); edgekit itself uses it in-process
(validation) and as a subprocess (latency, so peak RSS is the runtime's, not PyTorch's).

    python runner.py ARTIFACT_DIR [--warmup 20] [--iterations 200 | --time SECONDS] [--threads 2] [--batch 1]
                     [--inputs x.npz] [--accuracy accuracy.npz | --no-accuracy] [--runtime native|NAME]

On failure it prints ``{"schema": ..., "error": ..., "missing_module": ..., "fix": ...}`` and exits 3.
The runner keeps to Python 3.8 syntax: device images (Jetson, Raspberry Pi OS) ship old interpreters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:  # reported as a JSON error by main(); importers inside edgekit always have numpy
    np = None  # type: ignore[assignment]

SCHEMA = "edgekit-bench/1"
TOOL = "edgekit-runner"
ACCURACY_FILE = "accuracy.npz"
# The runtime that runs an artifact on its real device when it differs from the one that validates it here:
# a tensorrt artifact is validated as its Q/DQ ONNX in ONNX Runtime, but on a GPU it is a TensorRT engine.
NATIVE_RUNTIME = {"tensorrt": "tensorrt"}


class MissingRuntime(ImportError):
    """A Python module the artifact's runtime needs is not installed on this machine."""

    def __init__(self, module: str, pip: str):
        super().__init__(f"No module named '{module}'")
        self.module, self.pip = module, pip


def _import(module: str, pip: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingRuntime(module.split(".")[0], pip) from None


def _dtype(name: str):
    return {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}[name]


class OrtSession:
    runtime = "onnxruntime"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict):
        ort = _import("onnxruntime", "pip install onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path / meta["file"]), opts, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.settings = {"providers": ["CPUExecutionProvider"], "intra_op_num_threads": threads}

    def run(self, feeds: dict):
        return self.session.run(None, feeds)[0]


class OpenVINOSession:
    """OpenVINO CPU, latency hint, one stream. Inputs are bound to the request once per distinct feed (shared
    memory, no copy) and the request is re-run: ``request.infer(feeds)`` would re-create and re-bind the input
    tensors on every call, which for a dynamic-shape IR costs about 0.1 ms of shape propagation that is not
    inference (benchmark_app times ``infer()`` on bound tensors too)."""

    runtime = "openvino"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict):
        ov = self.ov = _import("openvino", "pip install openvino")
        self.bound: tuple = ()
        self.kept: dict = {}
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
            "device_name": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "inference_precision": _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "performance_hint": "LATENCY",
            "streams": 1,
        }

    def run(self, feeds: dict):
        key = tuple((name, id(value), value.shape, value.dtype.str) for name, value in feeds.items())
        if key != self.bound:
            self.kept = {name: np.ascontiguousarray(value) for name, value in feeds.items()}  # alive while bound
            for name, value in self.kept.items():
                self.request.set_tensor(name, self.ov.Tensor(value, shared_memory=True))
            self.bound, self.feeds = key, feeds  # holding the feeds keeps their ids from being reused
        self.request.infer()
        return np.array(self.request.get_output_tensor(0).data, copy=True)


class LiteRTSession:
    """ai-edge-litert's Interpreter (or tflite_runtime on old boards). Quantized int8 inputs/outputs are
    converted with the scales stored in the file; a batch larger than the file's static batch is looped."""

    runtime = "litert"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict):
        try:
            lib = _import("ai_edge_litert", "pip install ai-edge-litert  (or tflite-runtime on older boards)")
            Interpreter = _import("ai_edge_litert.interpreter", "pip install ai-edge-litert").Interpreter
        except MissingRuntime:
            lib = _import("tflite_runtime", "pip install ai-edge-litert  (or tflite-runtime on older boards)")
            Interpreter = _import("tflite_runtime.interpreter", "pip install tflite-runtime").Interpreter
        self.it = Interpreter(model_path=str(path / meta["file"]), num_threads=threads)
        self.it.allocate_tensors()
        self.order = [spec["name"] for spec in meta["inputs"]]
        self.details, self.output = self._io(self.it, self.order, meta.get("output"))
        self.version = getattr(lib, "__version__", "unknown")
        self.settings = {"num_threads": threads, "input_dtypes": [str(d["dtype"].__name__) for d in self.details]}

    @staticmethod
    def _io(it, names: list, output):
        """Input details in the order of ``names`` and the output's, found by signature name (edgekit names the
        signature's inputs and output as the model's IO spec); files whose signature says ``args_0``, ``args_1``
        (older edgekit, other converters) are mapped by position."""
        by_index = {d["index"]: d for d in [*it.get_input_details(), *it.get_output_details()]}
        try:
            runner = it.get_signature_runner()
            ins = {k: v["index"] for k, v in runner.get_input_details().items()}
            outs = {k: v["index"] for k, v in runner.get_output_details().items()}
        except (AttributeError, ValueError, KeyError):  # no signature (tflite_runtime before 2.7, bare graphs)
            ins, outs = {}, {}
        if names and all(n in ins for n in names):
            details = [by_index[ins[n]] for n in names]
        else:
            details = sorted(it.get_input_details(), key=lambda d: d["index"])
        out = by_index[outs[output]] if output in outs else it.get_output_details()[0]
        return details, out

    @staticmethod
    def _to_file(value, detail: dict):
        dtype = detail["dtype"]
        scale, zero = detail["quantization"]
        if dtype in (np.int8, np.uint8) and scale:
            info = np.iinfo(dtype)
            return np.clip(np.rint(value / scale) + zero, info.min, info.max).astype(dtype)
        return value.astype(dtype)

    def _one(self, feeds: dict):
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

    def run(self, feeds: dict):
        fixed = int(self.details[0]["shape"][0])
        return _looped(self._one, feeds, fixed)


class CoreMLSession:
    """Core ML prediction (macOS only: coremltools on Linux converts models but cannot execute them).

    edgekit's Core ML programs declare int64 ids as int32 (feeds are cast); a batch larger than the program takes
    runs in chunks of an allowed batch size, the last chunk padded up to one and cut back. ``batches``: the allowed
    sizes (default: the program's declared batch; edgekit passes a flexible program's sizes). ``predict``: one
    chunk's prediction instead of Core ML's (edgekit passes its reference interpreter off macOS)."""

    runtime = "coreml"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict, batches=None, predict=None):
        self.output = meta.get("output")
        if predict is not None:
            self._predict = predict
            self.batches = tuple(batches or (1,))
            self.version = "edgekit reference interpreter"
            self.settings = {"output": self.output, "batches": list(self.batches)}
            return
        if sys.platform != "darwin":
            raise RuntimeError(
                f"Core ML prediction needs macOS (this is {platform.system()}): run the runner on a Mac; "
                "on Linux edgekit validates Core ML programs with its reference interpreter instead"
            )
        ct = _import("coremltools", "pip install coremltools")
        units = meta.get("options", {}).get("compute_units", "ALL")
        self.model = ct.models.MLModel(str(path / meta["file"]), compute_units=ct.ComputeUnit[units])
        description = self.model.get_spec().description
        outputs = [o.name for o in description.output]
        self.output = self.output if self.output in outputs else outputs[0]
        shape = list(description.input[0].type.multiArrayType.shape)
        self.batches = tuple(batches or (int(shape[0]) if shape else 1,))
        self._predict = lambda feeds: self.model.predict(feeds)[self.output]
        self.version = ct.__version__
        self.settings = {"compute_units": units, "output": self.output}

    def run(self, feeds: dict):
        total = len(next(iter(feeds.values())))
        casted = {k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in feeds.items()}
        outs, start = [], 0
        while start < total:
            left = total - start
            fits = [b for b in self.batches if b <= left]
            size = max(fits) if fits else min(self.batches)  # pad the last chunk up to an allowed batch
            chunk = {k: v[start : start + size] for k, v in casted.items()}
            if size > left:
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], size - left, axis=0)]) for k, v in chunk.items()}
            outs.append(np.asarray(self._predict(chunk), np.float32)[: min(size, left)])
            start += size
        return np.concatenate(outs)


class _native_stderr_silenced:
    """Point file descriptor 2 at /dev/null for a block: native libraries write there past Python's sys.stderr."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


class ExecuTorchSession:
    """ExecuTorch's runtime pybindings (XNNPACK delegate plus portable kernels). The program has a static batch
    (and sequence length) of its export sample; larger batches loop. The pybindings take torch tensors, so this
    runtime needs torch next to numpy."""

    runtime = "executorch"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict):
        with _native_stderr_silenced():  # its C++ side logs CPU probing and thread-pool resets to fd 2
            et = _import("executorch.version", "pip install executorch")
            runtime = _import("executorch.runtime", "pip install executorch")
            self.torch = _import("torch", "pip install torch")
            pybind = _import("executorch.extension.pybindings.portable_lib", "pip install executorch")
        if meta.get("options", {}).get("delegate") == "coreml" and sys.platform != "darwin":
            raise RuntimeError(f"this .pte uses the Core ML delegate, which needs macOS (this is {platform.system()})")
        with _native_stderr_silenced():
            pybind._unsafe_reset_threadpool(threads)
            program = runtime.Runtime.get().load_program(str(path / meta["file"]))
            self.method = program.load_method("forward")
            # forward's inputs are positional; edgekit's programs name them (constant method input_names)
            named = "input_names" in getattr(program, "method_names", ())
            self.order = list(program.load_method("input_names").execute([])) if named else None
        self.order = self.order or [spec["name"] for spec in meta["inputs"]]
        self.static = {spec["name"]: spec["shape"] for spec in meta["inputs"]}
        self.fixed = int(meta.get("options", {}).get("batch", 1))
        self.version = getattr(et, "__version__", "unknown")
        self.settings = {"delegate": meta.get("options", {}).get("delegate", "xnnpack"), "threads": threads}

    def _one(self, feeds: dict):
        # Fresh C-order strides: ExecuTorch reads the dim order from the strides, and a numpy slice with a size-1
        # axis can carry strides that it takes for channels-last.
        args = [self.torch.from_numpy(np.array(feeds[name], order="C", copy=True)) for name in self.order]
        try:
            out = self.method.execute(args)[0]
        except RuntimeError as exc:
            shapes = {name: list(feeds[name].shape) for name in self.order}
            raise RuntimeError(
                f"ExecuTorch failed on inputs {shapes} ({exc}); this .pte has static shapes "
                f"{self.static}: feed data of the size/sequence length it was exported with"
            ) from None
        return out.detach().numpy().copy()

    def run(self, feeds: dict):
        return _looped(self._one, feeds, self.fixed)


def _cudart():
    """CUDA runtime bindings from cuda-python (``cuda.bindings.runtime`` since 12.6, ``cuda.cudart`` before)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        runtime = _import("cuda.cudart", "pip install cuda-python")
    return runtime


class TensorRTSession:
    """A TensorRT engine on the device's NVIDIA GPU (TensorRT 10 API, cuda-python for device memory).

    Engines are tied to the GPU and TensorRT version that built them, so the engine is built here from the
    artifact's TensorRT-ready ONNX unless a ``model.plan`` built on this device already sits next to it.
    Timings include the host-to-device and device-to-host copies, like ``trtexec``'s "Latency"."""

    runtime = "tensorrt"

    def __init__(self, path: Path, meta: dict, threads: int, shapes: dict):
        trt = _import("tensorrt", "pip install tensorrt  (on Jetson: the JetPack python3-libnvinfer package)")
        self.cudart = cudart = _cudart()
        self.trt = trt
        logger = trt.Logger(trt.Logger.WARNING)
        plan = path / "model.plan"
        if plan.is_file():
            data = plan.read_bytes()
        else:
            data = build_engine(trt, logger, path / meta["file"], meta["precision"], _device_profile(shapes))
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT could not load {plan.name} (engines only run on the GPU and TensorRT version that "
                f"built them): delete it so the runner builds one here from {meta['file']}"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.outputs = outputs
        self.output = meta.get("output") if meta.get("output") in outputs else outputs[0]
        self.stream = self._check(cudart.cudaStreamCreate())
        self.buffers: dict = {}
        props = self._check(cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        self.version = trt.__version__
        self.settings = {"gpu": name.strip("\x00"), "engine": "model.plan" if plan.is_file() else "built here"}

    def _check(self, result):
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise RuntimeError(f"CUDA call failed: {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def _buffer(self, name: str, nbytes: int):
        ptr, size = self.buffers.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                self._check(self.cudart.cudaFree(ptr))
            ptr = self._check(self.cudart.cudaMalloc(max(nbytes, 1)))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict):
        cudart, kinds = self.cudart, self.cudart.cudaMemcpyKind
        for name in self.inputs:
            host = np.ascontiguousarray(feeds[name], dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, host.shape)
            ptr = self._buffer(name, host.nbytes)
            self._check(
                cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kinds.cudaMemcpyHostToDevice, self.stream)
            )
            self.context.set_tensor_address(name, ptr)
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host = np.empty(shape, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._buffer(name, host.nbytes))
            results[name] = host
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name, host in results.items():
            ptr = self.buffers[name][0]
            self._check(
                cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kinds.cudaMemcpyDeviceToHost, self.stream)
            )
        self._check(cudart.cudaStreamSynchronize(self.stream))
        return results[self.output]


class EngineBuildError(RuntimeError):
    """TensorRT could not build an engine. ``parse_error``: the ONNX parser's first error when parsing failed
    (None when the build itself failed)."""

    def __init__(self, message: str, parse_error=None):
        super().__init__(message)
        self.parse_error = parse_error


def build_engine(trt, logger, onnx_path: Path, precision: str, profile, workspace_mb=None, timing_cache=None):
    """A serialized engine (bytes) from the TensorRT-ready ONNX (explicit Q/DQ carries the int8 scales).

    ``precision``: fp32, fp16 or int8 (int8 enables fp16 kernels too). ``profile(dynamic)``: given the names of
    the network's inputs with a dynamic dimension, ``{input: (min, opt, max) shape}`` of the optimization
    profile (none is added when it is empty). ``workspace_mb``: the workspace memory pool limit (TensorRT's
    default when None). ``timing_cache``: a file read before the build when it exists and written after it.
    edgekit's tensorrt target builds ``model.plan`` with this at compile time, the runner on the device."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        first = str(parser.get_error(0)) if parser.num_errors else "no error reported"
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path.name}: {errors}", first)
    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    shapes = profile([t.name for t in inputs if -1 in tuple(t.shape)])
    if shapes:
        optimization = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            optimization.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(optimization)
    if timing_cache is not None:
        cached = timing_cache.read_bytes() if timing_cache.exists() else b""
        config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(engine)


def _device_profile(shapes: dict):
    """The runner's profile: each dynamic input from batch 1 up to the shape it is fed (also the optimum)."""

    def profile(dynamic: list) -> dict:
        return {name: ((1, *tuple(shapes[name])[1:]), tuple(shapes[name]), tuple(shapes[name])) for name in dynamic}

    return profile


def _looped(one, feeds: dict, fixed: int):
    """Run a static-batch model over a larger batch, ``fixed`` samples at a time."""
    batch = len(next(iter(feeds.values())))
    if batch == fixed:
        return one(feeds)
    return np.concatenate([one({k: v[i : i + fixed] for k, v in feeds.items()}) for i in range(0, batch, fixed)])


def _type_name(value: object) -> str:
    """OpenVINO returns element types as objects; report them as 'f32', 'bf16', ..."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


BACKENDS = {
    "onnxruntime": OrtSession,
    "openvino": OpenVINOSession,
    "litert": LiteRTSession,
    "coreml": CoreMLSession,
    "executorch": ExecuTorchSession,
    "tensorrt": TensorRTSession,
}


def read_meta(path: Path) -> dict:
    meta_file = Path(path) / "artifact.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not an edgekit artifact directory (no artifact.json)")
    return json.loads(meta_file.read_text())


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


if __name__ == "__main__":
    sys.exit(main())
