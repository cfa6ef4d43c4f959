"""Tiny artifacts for the device tests, built directly (no PyTorch, no export pipeline: milliseconds).

A two-layer MLP ``logits = relu(x @ W1) @ W2`` as an ONNX file and as an OpenVINO IR, each in an edgekit
artifact directory, plus its numpy reference so accuracy sets can be checked against independent math.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

IN, HIDDEN, OUT = 16, 64, 10


def weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((IN, HIDDEN)).astype(np.float32), rng.standard_normal((HIDDEN, OUT)).astype(np.float32)


def reference(x: np.ndarray, seed: int = 0) -> np.ndarray:
    w1, w2 = weights(seed)
    return np.maximum(x @ w1, 0) @ w2


def onnx_model(seed: int = 0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = weights(seed)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Relu", ["h0"], ["r0"])]
    last = "r0"
    nodes.append(helper.make_node("MatMul", [last, "w2"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", OUT])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _meta(target: str, runtime: str, file: str, options: dict | None = None) -> dict:
    return {
        "format": "edgekit-artifact/1",
        "target": target,
        "precision": "fp32",
        "runtime": runtime,
        "file": file,
        "quantizer": None,
        "notes": [],
        "options": options or {},
        "output": "logits",
        "inputs": [{"name": "x", "shape": ["batch", IN], "dtype": "float32"}],
    }


def onnx_artifact(folder: Path, target: str = "onnx", **model_kw) -> Path:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model(**model_kw), str(folder / "model.onnx"))
    (folder / "artifact.json").write_text(json.dumps(_meta(target, "onnxruntime", "model.onnx")))
    return folder


def openvino_artifact(folder: Path, **model_kw) -> Path:
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    onnx_artifact(folder / "_onnx", **model_kw)
    ov.save_model(ov.convert_model(str(folder / "_onnx" / "model.onnx")), str(folder / "model.xml"))
    for f in (folder / "_onnx").iterdir():
        f.unlink()
    (folder / "_onnx").rmdir()
    meta = _meta("openvino", "openvino", "model.xml", {"inference_precision": "f32"})
    (folder / "artifact.json").write_text(json.dumps(meta))
    return folder


def artifact_tree(root: Path) -> Path:
    """A directory with an onnx and an openvino artifact (same leaf name, like a run's onnx/fp32, openvino/fp32)."""
    onnx_artifact(root / "onnx" / "fp32")
    openvino_artifact(root / "openvino" / "fp32")
    return root
