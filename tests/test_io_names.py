"""Artifact IO names are the model's: each artifact file itself names its inputs and output as the IO spec does
(LiteRT's signature included), and the runner feeds them by those names."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import edgekit
from edgekit.recipe import recipe_from_dict

INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "embedding"  # the bert family's output (a sentence embedding)
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert_torch", "executorch": "executorch"}
TARGETS = [t for t, module in BACKENDS.items() if importlib.util.find_spec(module) is not None]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One run of a tiny two-input text model over every target here: fp32, and int8 where the int8 program is
    converted behind its own wrapper (TFLite's static Q/DQ mode)."""
    data = {"source": "random", "samples": 8, "max_length": 16}
    int8 = ("tflite",)
    recipe = recipe_from_dict(
        {
            "name": "io-names",
            "model": {"source": "bert", "config": TINY_BERT},
            "quantization": {"calibration": data},
            "targets": [{"name": t, "precisions": ["fp32", "int8"] if t in int8 else ["fp32"]} for t in TARGETS],
            "validation": {"data": {**data, "seed": 1}, "budget": 1.0},
        }
    )
    out = tmp_path_factory.mktemp("io") / "run"
    result = edgekit.run_recipe(recipe, out, progress=False, benchmark=False, log=lambda *_: None)
    # validated ok: the runner fed every artifact by name and got the embedding back
    assert {(r["target"], r["precision"]): r["status"] for r in result.report["rows"]} == {
        (r["target"], r["precision"]): "ok" for r in result.report["rows"]
    }, result.report["rows"]
    return out


def _onnx(path: Path) -> tuple[list[str], list[str]]:
    import onnx

    graph = onnx.load(str(path / "model.onnx")).graph
    return [i.name for i in graph.input], [o.name for o in graph.output]


def _openvino(path: Path) -> tuple[list[str], list[str]]:
    import openvino as ov

    model = ov.Core().read_model(str(path / "model.xml"))
    return [i.get_any_name() for i in model.inputs], [o.get_any_name() for o in model.outputs]


def _tflite(path: Path) -> tuple[list[str], list[str]]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path / "model.tflite"))
    runner = it.get_signature_runner()  # serving_default
    ins = sorted(runner.get_input_details().items(), key=lambda kv: kv[1]["index"])
    return [k for k, _ in ins], list(runner.get_output_details())


def _executorch(path: Path) -> tuple[list[str], list[str]]:
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(path / "model.pte"))
    names = [list(program.load_method(m).execute([])) for m in ("input_names", "output_names")]
    return names[0], names[1]


READERS = {"onnx": _onnx, "openvino": _openvino, "tflite": _tflite, "executorch": _executorch}


@pytest.mark.parametrize("target", TARGETS)
def test_artifact_files_name_their_io_as_the_model(run, target):
    for adir in sorted((run / target).iterdir()):
        inputs, outputs = READERS[target](adir)
        assert inputs == INPUTS and outputs == [OUTPUT], (adir.name, inputs, outputs)
        meta = json.loads((adir / "artifact.json").read_text())
        assert [i["name"] for i in meta["inputs"]] == INPUTS and meta["output"] == OUTPUT


def test_litert_runner_feeds_by_signature_name_not_position(run, tmp_path):
    """An IO spec listing the inputs in another order still feeds each tensor its own data."""
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from edgekit.device import runner

    art = run / "tflite" / "fp32"
    meta = json.loads((art / "artifact.json").read_text())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (2, 16)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[:, 10:] = 0
    ref = runner.load(art, 1).run({"input_ids": ids, "attention_mask": mask})
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    (flipped / "model.tflite").write_bytes((art / "model.tflite").read_bytes())
    (flipped / "artifact.json").write_text(json.dumps({**meta, "inputs": meta["inputs"][::-1]}))
    out = runner.load(flipped, 1).run({"input_ids": ids, "attention_mask": mask})
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
