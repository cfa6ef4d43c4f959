"""Outlier-free attention: the variants, the outlier metrics, distillation, checkpoints and the paper preset."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgekit.archs import load_model
from edgekit.data import DataSet
from edgekit.errors import RecipeError, TrainingInterrupted, UnsupportedOpError
from edgekit.nn.sites import transformer_sites
from edgekit.recipe import DataSpec, DistillSpec, ModelSpec, TrainSpec, recipe_from_dict
from edgekit.train.objectives import DistillObjective
from edgekit.train.outliers import outlier_metrics
from edgekit.train.trainer import train
from edgekit.transforms import get_transform
from edgekit.transforms.attention import ClippedSoftmax, GatedAttention

from .conftest import TINY_VIT, bundle

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def run(model: torch.nn.Module, xs) -> torch.Tensor:
    with torch.no_grad():
        return model(*xs)


@pytest.mark.parametrize(
    "source,config", [("vit", TINY_VIT), ("deit", TINY_VIT), ("swin", {}), ("bert", TINY_BERT)], ids=str
)
def test_variants_swap_every_attention_module(source, config):
    b = bundle(source, config)
    xs = b.example_inputs(2, 12)
    ref = run(b.module.eval(), xs)
    result = get_transform("clipped_softmax").apply(copy.deepcopy(b.module), {"gamma": 0.0, "zeta": 1.0})
    neutral = result.model
    assert result.info["attention_modules"] == len(transformer_sites(b.module)) > 0
    assert not hasattr(neutral, "edgekit_transform_info")  # the info is returned, not set on the model
    torch.testing.assert_close(run(neutral.eval(), xs), ref, rtol=1e-5, atol=1e-5)  # gamma=0, zeta=1: softmax
    gated = get_transform("gated_attention").apply(copy.deepcopy(b.module), {"pi_init": 0.5}).model.eval()
    assert (run(gated, xs) - ref).abs().max() > 1e-4  # a gate of ~0.5 halves every head's context


def test_clipped_softmax_reaches_exact_zeros_and_ones():
    scores = torch.tensor([[[[0.0, 0.0, 8.0, -8.0]]]])
    p = ClippedSoftmax(gamma=-0.03, zeta=1.03).probs(scores)
    assert p[..., 3] == 0.0 and p[..., 2] == 1.0  # finite logits give exact 0 and 1
    plain = torch.softmax(scores, -1)
    assert float(plain[..., 3]) > 0 and float(plain[..., 2]) < 1
    alpha = ClippedSoftmax(alpha=4.0).probs(torch.zeros(1, 1, 1, 8))
    # gamma = -alpha / T = -0.5 and zeta = 1: (1.5 / 8) - 0.5 < 0, every entry clipped to 0
    assert torch.all(alpha == 0)


def test_clipped_softmax_passes_no_gradient_where_clipped():
    scores = torch.tensor([[[[0.0, 0.0, 8.0, -8.0]]]], requires_grad=True)
    ClippedSoftmax(gamma=-0.03, zeta=1.0).probs(scores)[..., 3].sum().backward()
    assert scores.grad is not None and torch.all(scores.grad == 0)


def test_gate_starts_at_pi_init_and_has_paper_parameter_count():
    g = GatedAttention(heads=3, head_dim=8, pi_init=0.25)
    assert sum(p.numel() for p in g.parameters()) == 3 * (8 + 1)  # n_heads * (d_head + 1)
    ctx = torch.ones(2, 5, 3, 8)
    out = g.gate(torch.zeros(2, 5, 24), ctx)
    torch.testing.assert_close(out, torch.full_like(ctx, 0.25))
    mlp = GatedAttention(heads=3, head_dim=8, pi_init=0.25, hidden=4)
    assert mlp.gate(torch.randn(2, 5, 24), ctx).shape == ctx.shape


@pytest.mark.parametrize("options", [{"gamma": 0.1}, {"zeta": 0.5}, {"alpha": -1}, {"gama": -0.1}])
def test_bad_clipped_softmax_options_are_named(options):
    b = bundle("vit", TINY_VIT)
    with pytest.raises(RecipeError, match="clipped_softmax"):
        get_transform("clipped_softmax").apply(b.module, options)


def test_models_without_attention_are_refused_clearly():
    b = load_model(ModelSpec("mobileone", {}), None)
    with pytest.raises(UnsupportedOpError, match="no attention module found in Classifier"):
        get_transform("gated_attention").apply(b.module, {})


def test_outlier_metrics_see_a_planted_outlier():
    b = bundle("vit", TINY_VIT)
    data = DataSet(
        {"pixel_values": np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32)}, None, "noise"
    )
    base = outlier_metrics(b.module, ["pixel_values"], data, batch_size=16)
    assert base["applicable"] and len(base["layers"]) == 2 and base["batches"] == 4
    with torch.no_grad():  # one huge output-projection bias: a "no-op head" outlier
        b.module.hf.vit.layers[1].attention.o_proj.bias[3] = 500.0
    planted = outlier_metrics(b.module, ["pixel_values"], data, batch_size=16)
    assert planted["attention_max_inf_norm"] >= 500 > base["attention_max_inf_norm"]
    assert planted["attention_kurtosis"] > 3 * base["attention_kurtosis"]


def test_distillation_moves_student_to_teacher_and_resumes_exactly(tmp_path):
    b = bundle("vit", TINY_VIT)
    teacher = copy.deepcopy(b.module).eval()
    student = get_transform("gated_attention").apply(b.module, {"pi_init": 0.5}).model
    rng = np.random.default_rng(0)
    data = DataSet({"pixel_values": rng.normal(size=(64, 1, 8, 8)).astype(np.float32)}, None, "noise")
    xs = [torch.from_numpy(data.inputs["pixel_values"])]
    gap0 = float((run(student.eval(), xs) - run(teacher, xs)).abs().mean())
    spec = TrainSpec(DataSpec("random"), steps=30, lr=3e-3, batch_size=16, distill=DistillSpec(hidden=1.0))
    straight = copy.deepcopy(student)
    train(straight, ["pixel_values"], data, spec, DistillObjective(teacher, straight, spec.distill, "classification"))
    assert float((run(straight, xs) - run(teacher, xs)).abs().mean()) < gap0

    # the same run, checkpointed at step 10 and resumed, ends on the same weights
    half = TrainSpec(
        DataSpec("random"), steps=30, lr=3e-3, batch_size=16, distill=DistillSpec(hidden=1.0), checkpoint_every=10
    )
    first = copy.deepcopy(student)
    objective = DistillObjective(teacher, first, half.distill, "classification")

    def interrupt_after_checkpoint(*a):
        if (tmp_path / "ck" / "last.pt").exists():
            raise KeyboardInterrupt
        return objective(*a)

    interrupt_after_checkpoint.name = "distill"
    with pytest.raises(TrainingInterrupted, match="continue with --resume"):
        train(first, ["pixel_values"], data, half, interrupt_after_checkpoint, tmp_path / "ck")
    second = copy.deepcopy(student)
    train(
        second,
        ["pixel_values"],
        data,
        half,
        DistillObjective(teacher, second, half.distill, "classification"),
        tmp_path / "ck",
        resume=True,
    )
    torch.testing.assert_close(run(second, xs), run(straight, xs), rtol=1e-4, atol=1e-5)


def test_paper_preset_expands_and_explicit_keys_win():
    base = {"name": "p", "model": {"source": "vit"}, "targets": [{"name": "onnx", "precisions": ["int8"]}]}
    r = recipe_from_dict({**base, "quantization": {"preset": "paper-w8a8", "calibration": {"source": "digits"}}})
    q = r.quantization
    assert (q.per_channel, q.activation_symmetric, q.quantize_outputs, q.estimator.value) == (
        False,
        False,
        True,
        "minmax",
    )
    assert q.calibration.samples == 16 * q.calibration.batch_size
    r = recipe_from_dict(
        {**base, "quantization": {"preset": "paper-w8a8", "per_channel": True, "calibration": {"source": "digits"}}}
    )
    assert r.quantization.per_channel is True
    with pytest.raises(RecipeError, match="did you mean 'paper-w8a8'"):
        recipe_from_dict({**base, "quantization": {"preset": "paper-w8", "calibration": {"source": "digits"}}})


def test_two_attention_variants_in_one_recipe_are_refused():
    b = bundle("vit", TINY_VIT)
    model = get_transform("clipped_softmax").apply(b.module, {}).model
    with pytest.raises(RecipeError, match="replace each other"):
        get_transform("gated_attention").apply(model, {})


VARIANTS = {
    "clipped": ("clipped_softmax", {"alpha": 0.5}),  # T = 17 tokens: gamma = -0.03
    "gated-mlp": ("gated_attention", {"pi_init": 0.3, "gate": "mlp", "hidden": 4}),
}
EXPORT_TARGETS = ["onnx", "openvino", "tflite", "coreml"]


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant_ctx(request, tmp_path_factory):
    from edgekit.data import load_data
    from edgekit.quant import calibrate
    from edgekit.recipe import QuantSpec
    from edgekit.targets.base import CompileContext, get_target

    name, options = VARIANTS[request.param]
    b = bundle("vit", TINY_VIT)
    b.module = get_transform(name).apply(b.module, options).model.eval()
    with torch.no_grad():  # a gate that differs per head and token, as after training
        for name, p in b.module.named_parameters():
            if "edgekit_attention" in name:
                p.normal_(0, 0.5)
    calib = load_data(DataSpec("digits", "train", samples=128), b)
    q = QuantSpec(calibration=DataSpec("digits"), per_channel=False, activation_symmetric=False, quantize_outputs=True)
    work = tmp_path_factory.mktemp("work")
    val = load_data(DataSpec("digits", "test", samples=100), b)
    programs = {}  # quantization profile -> its program, made on first use

    def context(target: str) -> CompileContext:
        profile = get_target(target).quant_profile
        if profile not in programs:
            programs[profile] = calibrate(b.module, ["pixel_values"], calib, q, b, profile)
        cal = programs[profile]
        (work / target).mkdir()
        return CompileContext(b, b.module, cal.sim, cal.encodings, q, calib, work / target)

    return context, val


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_variants_export_with_parity(variant_ctx, target, tmp_path):
    """FP32 matches PyTorch and the paper-setting W8A8 artifact agrees with its profile's program, per target."""
    from edgekit.metrics import agreement, cosine
    from edgekit.recipe import Precision
    from edgekit.targets.base import Artifact, get_target

    context, val = variant_ctx
    t = get_target(target)
    ok, why = t.available()
    if not ok:
        pytest.skip(f"{target}: {why}")
    x = val.inputs["pixel_values"]
    ctx = context(target)
    for precision in (Precision.FP32, Precision.INT8):
        out_dir = tmp_path / precision.value
        out_dir.mkdir()
        t.export(ctx, precision, {}, out_dir)
        out = t.run(t.load(Artifact.read(out_dir)), {"pixel_values": x})
        ref = (ctx.model if precision is Precision.FP32 else ctx.sim)(torch.from_numpy(x)).detach().numpy()
        if precision is Precision.FP32:
            np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
        else:
            assert agreement(out, ref) >= 97.0 and cosine(out, ref) > 0.995
