"""Sessions of the CPU runtimes: ONNX Runtime, OpenVINO, LiteRT (ai-edge-litert or tflite_runtime) and
ExecuTorch. Each opens one artifact and runs a feed dict to the model's output array."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from .common import MissingRuntime, _import, _looped, _native_stderr_silenced, _type_name, np


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


# dtype names, not numpy types: this module is imported before main() checks that numpy exists
_QUANTIZED = ("int8", "uint8", "int16")  # int16: LiteRT's 16x8 mode


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
        if np.dtype(dtype).name in _QUANTIZED and scale:
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
        if out.dtype.name in _QUANTIZED and scale:
            return (out.astype(np.float32) - zero) * scale
        return out.copy()

    def run(self, feeds: dict):
        fixed = int(self.details[0]["shape"][0])
        return _looped(self._one, feeds, fixed)


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
