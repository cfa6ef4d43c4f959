"""TensorRT: the session on an NVIDIA GPU and the one engine build (also used by edgekit's tensorrt target at
compile time). Named ``trt_session`` so that running the runner directory never shadows the ``tensorrt``
package."""

from __future__ import annotations

from pathlib import Path

from .common import _import, np


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
