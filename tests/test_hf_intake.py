"""Any HF checkpoint directory loads: task from config.json architectures or --task, the Auto class for it, the IO
spec from the checkpoint, one output tensor equal to what the HF model itself computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_one_line_error
from tests.hf_archs import ARCHS, save_checkpoint

pytest.importorskip("transformers")

# name -> (edgekit task, HF task, Auto class, input shapes)
EXPECTED = {
    "resnet": ("classification", "image-classification", "AutoModelForImageClassification", [["batch", 3, 32, 32]]),
    "efficientnet": ("classification", "image-classification", "AutoModelForImageClassification", None),
    "mobilevitv2": (
        "classification",
        "image-classification",
        "AutoModelForImageClassification",
        [["batch", 3, 64, 64]],
    ),
    "clip_vision": ("embedding", "image-feature-extraction", "AutoModel", [["batch", 3, 32, 32]]),
    "xlm-roberta": ("classification", "text-classification", "AutoModelForSequenceClassification", None),
    "mobilebert": ("embedding", "feature-extraction", "AutoModel", None),
    "qwen2": ("next-token", "text-generation", "AutoModelForCausalLM", [["batch", "sequence"]] * 2),
    "funnel": ("classification", "text-classification", "AutoModelForSequenceClassification", [["batch", 64]] * 2),
}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf_ckpts")
    for name in EXPECTED:
        save_checkpoint(name, root / name)
    save_checkpoint("roformer", root / "no-architectures", architectures=False)
    return root


def _load(path: Path, task: str | None = None):
    from edgekit.archs import load_model
    from edgekit.recipe import ModelSpec

    return load_model(ModelSpec(str(path), task=task))


def _hf_reference(name: str, path: Path, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """What the HF model itself computes, loaded by its own class (unpatched), reduced as the task says."""
    import transformers as tf

    model = getattr(tf, ARCHS[name].model_class).from_pretrained(str(path), attn_implementation="eager").eval()
    with torch.no_grad():
        if ARCHS[name].modality == "vision":
            out = model(pixel_values=inputs[0])
            return out.logits if hasattr(out, "logits") else out.pooler_output
        ids, mask = inputs
        out = model(input_ids=ids, attention_mask=mask)
        if name == "qwen2":
            return out.logits[torch.arange(len(ids)), mask.sum(1) - 1]
        if name == "mobilebert":  # mean over the mask, L2-normalized: the sentence-transformers embedding
            m = mask.unsqueeze(-1).float()
            pooled = (out.last_hidden_state * m).sum(1) / m.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)
        return out.logits


@pytest.mark.parametrize("name", list(EXPECTED))
def test_checkpoint_loads_with_task_io_and_hf_output(ckpts, name):
    task, hf_task, auto, shapes = EXPECTED[name]
    b = _load(ckpts / name)
    import transformers as tf

    model_type = getattr(tf, ARCHS[name].config_class).model_type
    assert (b.task, b.info["hf_task"], b.info["auto_class"], b.family) == (task, hf_task, auto, model_type)
    if shapes is not None:
        assert [list(s.shape) for s in b.inputs] == shapes
    if ARCHS[name].modality == "text":
        assert [(s.name, s.dtype) for s in b.inputs] == [("input_ids", "int64"), ("attention_mask", "int64")]
        ids = torch.randint(0, 500, (3, 64))
        mask = torch.ones_like(ids)
        mask[1, 40:] = 0  # a right-padded row: the output reads the mask
        inputs = (ids, mask)
    else:
        inputs = b.example_inputs(2, 1)
    with torch.no_grad():
        got = b.module(*inputs)
    ref = _hf_reference(name, ckpts / name, inputs)
    assert got.shape == ref.shape and got.dim() == 2
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_patches_are_reported(ckpts):
    assert "AdaptiveAvgPool2d" in _load(ckpts / "efficientnet").info["patches"][0]
    assert "reshape" in _load(ckpts / "mobilevitv2").info["patches"][0]


def test_no_architectures_needs_task_flag(ckpts, run_cli, tmp_path):
    path = ckpts / "no-architectures"
    code, _, err = run_cli(
        "export", path, "--target", "onnx", "--precision", "fp32", "--no-bench", "--out", tmp_path / "r"
    )
    line = assert_one_line_error(code, err, "pass --task")
    assert "no architectures" in line
    for task in ("feature-extraction", "embedding"):  # the HF name and edgekit's word
        b = _load(path, task)
        assert (b.task, b.info["hf_task"], b.output_name) == ("embedding", "feature-extraction", "embedding")
    code, _, err = run_cli(
        "export", path, "--task", "feature-extraction", "--target", "onnx", "--precision", "fp32", "--no-bench",
        "--calib", "random", "--val", "random", "--val-samples", "4", "--out", tmp_path / "ok",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert (report["model"]["task"], report["rows"][0]["status"]) == ("embedding", "ok")


@pytest.mark.parametrize(
    ("name", "task", "pattern"),
    [
        ("resnet", "text-generation", "is for text models"),
        ("resnet", "next-token", "needs a text model"),
        ("xlm-roberta", "summarize", "unknown task 'summarize'"),
    ],
)
def test_unfitting_task_is_one_line(ckpts, run_cli, tmp_path, name, task, pattern):
    code, _, err = run_cli(
        "export",
        ckpts / name,
        "--task",
        task,
        "--target",
        "onnx",
        "--precision",
        "fp32",
        "--no-bench",
        "--out",
        tmp_path / "r",
    )
    assert_one_line_error(code, err, pattern)


def test_unknown_architecture_class_is_one_line(ckpts, run_cli, tmp_path):
    path = tmp_path / "odd"
    path.mkdir()
    cfg = json.loads((ckpts / "resnet" / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "architectures": ["ResNetForSomethingElse"]}))
    code, _, err = run_cli("export", path, "--target", "onnx", "--precision", "fp32", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "name no task edgekit knows")


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ("CLIPConfig", "takes images and text together"),  # a two-tower model: export one tower
        ("Wav2Vec2Config", "models take 'input_values'"),  # audio
    ],
)
def test_models_of_other_modalities_are_one_line(run_cli, tmp_path, config, pattern):
    import transformers as tf

    path = tmp_path / "ckpt"
    getattr(tf, config)().save_pretrained(path)  # the config is enough: it fails before any weights are read
    code, _, err = run_cli("export", path, "--target", "onnx", "--precision", "fp32", "--out", tmp_path / "r")
    assert_one_line_error(code, err, pattern)


@pytest.mark.parametrize("name", ["resnet", "qwen2"])
def test_export_cli_ok_row(ckpts, run_cli, tmp_path, name):
    out = tmp_path / "run"
    code, _, err = run_cli(
        "export", ckpts / name, "--target", "onnx", "--precision", "fp32", "--no-bench",
        "--calib", "random", "--val", "random", "--val-samples", "8", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert [(r["target"], r["status"]) for r in report["rows"]] == [("onnx", "ok")]
    assert report["model"]["hf_task"] == EXPECTED[name][1]
    assert report["model"]["auto_class"] == EXPECTED[name][2]


def test_registered_family_keeps_its_loader_unless_another_task(tmp_path):
    """A bert checkpoint stays edgekit's tuned sentence embedder; --task text-classification takes the HF head."""
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.BertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=4
    )
    tf.BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    assert (_load(tmp_path).family, _load(tmp_path).task) == ("bert", "embedding")
    b = _load(tmp_path, "text-classification")
    assert (b.family, b.task, b.info["auto_class"]) == ("bert", "classification", "AutoModelForSequenceClassification")
    with torch.no_grad():
        assert b.module(torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long)).shape == (2, 4)


def _word_tokenizer(path: Path, words: list[str], pad: bool) -> None:
    """A tiny word-level tokenizer saved next to the weights (decoders usually have no pad token: pad=False)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[PAD]"] if pad else ["[UNK]", "<eos>"]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    kw = {"pad_token": "[PAD]"} if pad else {"eos_token": "<eos>"}
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", **kw).save_pretrained(path)


@pytest.mark.parametrize("name", ["xlm-roberta", "qwen2"])
def test_text_csv_goes_through_the_checkpoint_tokenizer(ckpts, tmp_path, name):
    from edgekit.data import load_data
    from edgekit.recipe import DataSpec

    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far"]
    path = tmp_path / name
    save_checkpoint(name, path)
    _word_tokenizer(path, words, pad=name != "qwen2")
    csv = tmp_path / "t.csv"
    csv.write_text("the cat sat,0\na dog ran far on the mat,1\n")
    b = _load(path)
    assert b.tokenizer_dir == str(path)
    ds = load_data(DataSpec("text-csv", path=str(csv), max_length=16), b)
    ids, mask = ds.inputs["input_ids"], ds.inputs["attention_mask"]
    assert ids.shape == (2, 16) and ds.labels.tolist() == [0, 1]
    assert mask.sum(1).tolist() == [3, 7] and mask[0, :3].all()  # right-padded
    assert ids[0, :3].tolist() == [words.index(w) + 2 for w in ("the", "cat", "sat")]
    with torch.no_grad():
        out = b.module(torch.from_numpy(ids), torch.from_numpy(mask))
    assert np.isfinite(out.numpy()).all()


def test_text_csv_without_tokenizer_says_how(ckpts, tmp_path):
    from edgekit.data import load_data
    from edgekit.errors import CalibrationError
    from edgekit.recipe import DataSpec

    csv = tmp_path / "t.csv"
    csv.write_text("a b,0\n")
    with pytest.raises(CalibrationError, match=r"tokenizer\.save_pretrained"):
        load_data(DataSpec("text-csv", path=str(csv)), _load(ckpts / "xlm-roberta"))


def test_openvino_conversion_error_names_the_op(tmp_path):
    """OpenVINO's own reason (the op and why), not the C++ source line its message starts with."""
    ov = pytest.importorskip("openvino")
    import onnx
    from onnx import TensorProto, helper

    from edgekit.targets.openvino import conversion_reason

    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[8, 8], ceil_mode=1)  # kernel > input
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(Exception) as info:
        ov.convert_model(str(path))
    reason = conversion_reason(info.value)
    assert reason.startswith("AveragePool") and "failed at src/" not in reason, reason
    assert "\n" not in reason
