"""Binary quantization: EcoFormer hashing attention, 1-bit weights, their lowering per target, the ops proxy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.errors import RecipeError, UnsupportedOpError
from edgekit.recipe import Precision, QuantSpec
from edgekit.reduced import TINY
from edgekit.targets.base import Artifact, CompileContext, all_targets, get_target
from edgekit.train.objectives import auxiliary_loss
from edgekit.transforms import get_transform
from edgekit.transforms.binary_attention import (
    EcoFormerAttention,
    PvtV2EcoFormerAttention,
    SharedKey,
    ecoformer_modules,
    hamming_attention,
    hamming_attention_quadratic,
    hash_fit_losses,
    key_keep_from_mask,
)
from edgekit.transforms.binary_hash import KernelHash, binarize, l2_normalize, similarity_targets
from edgekit.transforms.binary_weights import BinaryLinear, binary_layers
from edgekit.transforms.consumers import example_inputs
from edgekit.validate.ops_proxy import attention_cost_curve, count_ops, ops_summary

from .conftest import TINY_VIT, bundle

TARGETS = [t.name for t in all_targets()]
SMALL_PVT = TINY["pvt_v2"]


def transformed(source: str, config: dict, names: list[str], options: dict | None = None):
    b = bundle(source, config)
    with example_inputs(b.example_inputs(4, 8)):
        for name in names:
            b.module = get_transform(name).apply(b.module, options).model.eval()
    return b


def signs(t: torch.Tensor) -> bool:
    return bool(((t == 1) | (t == -1)).all())


# --- hash codes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_hash_codes_are_exactly_plus_minus_one(training):
    h = KernelHash(heads=3, head_dim=8, nbits=16, anchors=5)
    x = l2_normalize(torch.randn(2, 3, 20, 8))
    h.train(training)
    codes = h(x.requires_grad_(training))
    assert codes.shape == (2, 3, 20, 16)
    assert signs(codes)
    assert signs(binarize(torch.zeros(4)))  # sign(0) would be 0: never a code


def test_binarize_straight_through_gradient():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    binarize(z).sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # identity inside |z| <= 1, zero outside


def test_hash_anchors_come_from_the_first_tokens_and_then_stay():
    h = KernelHash(heads=2, head_dim=4, nbits=8, anchors=3)
    x = torch.randn(2, 2, 5, 4)
    h(x)
    tokens = x.transpose(0, 1).reshape(2, 10, 4)
    for head in range(2):  # every anchor is one of that head's tokens
        d = torch.cdist(h.anchors[head].detach(), tokens[head])
        assert torch.all(d.min(1).values < 1e-6)
    before = h.anchors.detach().clone()
    h(torch.randn(2, 2, 5, 4))
    torch.testing.assert_close(h.anchors.detach(), before)


def test_similarity_targets_mark_topk_most_and_least_similar():
    scores = torch.randn(2, 3, 12, 12)
    t = similarity_targets(scores, topk=4)
    assert torch.all((t == 1).sum(-1) == 4) and torch.all((t == -1).sum(-1) == 4)
    assert torch.all(t.gather(-1, scores.argmax(-1, keepdim=True)) == 1)
    assert torch.all(t.gather(-1, scores.argmin(-1, keepdim=True)) == -1)
    assert torch.all((similarity_targets(torch.randn(1, 1, 4, 4), topk=10) != 0).sum(-1) == 4)  # k <= N/2


def test_hash_fit_learns_the_attention_neighbourhoods():
    torch.manual_seed(0)
    h = KernelHash(heads=1, head_dim=8, nbits=16, anchors=12)
    centers = l2_normalize(torch.randn(4, 8))
    x = l2_normalize(centers.repeat_interleave(8, 0) + 0.15 * torch.randn(32, 8)).reshape(1, 1, 32, 8)
    h(x)
    opt = torch.optim.Adam([h.anchors, h.proj], lr=0.05)
    first = float(h.fit_loss(x, x, topk=6))
    for _ in range(150):
        loss = h.fit_loss(x, x, topk=6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(h.fit_loss(x, x, topk=6)) < 0.5 * first
    codes = h.eval()(x)[0, 0]
    affinity = codes @ codes.T
    same = torch.arange(32).div(8, rounding_mode="floor")
    within = affinity[same[:, None] == same[None, :]].mean()
    across = affinity[same[:, None] != same[None, :]].mean()
    assert within > across + 4  # codes of one cluster agree on more bits than codes of different clusters


# --- linear-time attention --------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_linear_path_equals_direct_quadratic_computation(masked):
    g = torch.Generator().manual_seed(0)
    nbits = 16
    hq = torch.where(torch.rand(2, 3, 7, nbits, generator=g) > 0.5, 1.0, -1.0).double()
    hk = torch.where(torch.rand(2, 3, 9, nbits, generator=g) > 0.5, 1.0, -1.0).double()
    v = torch.randn(2, 3, 9, 5, generator=g).double()
    keep = None
    if masked:
        mask = torch.zeros(2, 1, 7, 9, dtype=torch.float64)
        mask[1, ..., 6:] = torch.finfo(torch.float64).min
        keep = key_keep_from_mask(mask)
    fast = hamming_attention(hq, hk, v, nbits, keep)
    slow = hamming_attention_quadratic(hq, hk, v, nbits, keep)
    assert fast.shape == (2, 3, 7, 5)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    # written out: weights (h_i . h_j + b + 1), normalized over the kept keys
    w = hq[1, 0] @ hk[1, 0].T + nbits + 1
    if masked:
        w[:, 6:] = 0
    torch.testing.assert_close(fast[1, 0], (w @ v[1, 0]) / w.sum(-1, keepdim=True), rtol=1e-12, atol=1e-12)


def test_ecoformer_variant_shapes_and_quadratic_parity():
    torch.manual_seed(0)
    var = EcoFormerAttention(heads=4, head_dim=8, nbits=16, anchors=10).eval()
    q, v = torch.randn(2, 4, 30, 8), torch.randn(2, 4, 30, 8)
    context, probs = var.attend(q, torch.empty(0), v, None, 8**-0.5)
    assert context.shape == (2, 4, 30, 8) and probs is None
    codes = var.hash(l2_normalize(q))
    torch.testing.assert_close(context, hamming_attention_quadratic(codes, codes, v, 16), rtol=1e-5, atol=1e-5)


# --- the transform on model families ----------------------------------------------------------------------


@pytest.mark.parametrize("source,config", [("vit", TINY_VIT), ("deit", TINY_VIT), ("pvt_v2", SMALL_PVT)], ids=str)
def test_ecoformer_transform_swaps_every_attention_and_trains(source, config):
    plain = bundle(source, config)
    b = bundle(source, config)
    with example_inputs(b.example_inputs(4, 8)):
        result = get_transform("ecoformer").apply(b.module)
    b.module = result.model.eval()
    variants = ecoformer_modules(b.module)
    assert len(variants) == result.info["attention_modules"] > 0
    assert all(bool(v.hash.initialized) for v in variants)  # anchors sampled from the example inputs
    if source == "pvt_v2":
        assert all(
            isinstance(m, PvtV2EcoFormerAttention) for m in b.module.modules() if hasattr(m, "edgekit_attention")
        )
        assert not any(n.endswith("spatial_reduction") for n, _ in b.module.named_modules())
    else:
        assert sum(isinstance(m, SharedKey) for m in b.module.modules()) == len(variants)
        assert b.num_parameters != plain.num_parameters
    xs = b.example_inputs(3, 8)
    with torch.no_grad():
        out = b.module.eval()(*xs)
    assert out.shape == plain.module(*xs).shape and torch.isfinite(out).all()
    assert float(auxiliary_loss(b.module)) == 0.0  # eval: no hash loss
    b.module.train()
    task = b.module(*xs).logsumexp(-1).mean()
    aux = auxiliary_loss(b.module)
    assert aux is not None and float(aux) > 0
    grads_task = torch.autograd.grad(task, [variants[0].hash.proj], allow_unused=True)
    assert grads_task[0] is None  # the task loss does not move the hash: it is fit to the attention map only
    (task + aux).backward()
    query = next(m for n, m in b.module.named_modules() if n.endswith(("q_proj", "query")))
    assert query.weight.grad is not None and query.weight.grad.abs().sum() > 0  # STE through the codes
    assert variants[0].hash.proj.grad.abs().sum() > 0 and variants[0].hash.anchors.grad.abs().sum() > 0


def test_ecoformer_rejects_bad_options_and_models_without_attention():
    b = bundle("vit", TINY_VIT)
    with pytest.raises(RecipeError, match="transform ecoformer: options: unknown key 'nbit'"):
        get_transform("ecoformer").apply(b.module, {"nbit": 8})
    with pytest.raises(RecipeError, match="nbits >= 1"):
        get_transform("ecoformer").apply(b.module, {"nbits": 0})
    with pytest.raises(UnsupportedOpError, match="no attention module"):
        get_transform("ecoformer").apply(nn.Sequential(nn.Linear(4, 4)), {})


def test_ecoformer_unshared_keeps_key_projection():
    b = transformed("vit", TINY_VIT, ["ecoformer"], {"shared_qk": False, "nbits": 8})
    assert not any(isinstance(m, SharedKey) for m in b.module.modules())
    assert ecoformer_modules(b.module)[0].describe()["shared_qk"] is False
    with torch.no_grad():
        assert torch.isfinite(b.module(*b.example_inputs(2, 8))).all()


def test_hash_fit_diagnostic_leaves_the_model_unchanged():
    b = transformed("vit", TINY_VIT, ["ecoformer"])
    xs = b.example_inputs(4, 8)
    state = copy.deepcopy(b.module.state_dict())
    losses = hash_fit_losses(b.module, xs)
    assert len(losses) == 2 and all(0 < v < 4 for v in losses)
    for k, v in b.module.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert not b.module.training


# --- 1-bit weights ----------------------------------------------------------------------------------------


def test_binary_linear_is_scale_times_sign_with_ste():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    b = BinaryLinear(lin).eval()
    x = torch.randn(3, 6)
    w = lin.weight.detach()
    expected = x @ (w.sign() * w.abs().mean(1, keepdim=True)).T + lin.bias.detach()
    torch.testing.assert_close(b(x), expected)
    deq = b.dequantized_weight()
    assert all(len(row.abs().unique()) == 1 for row in deq)  # two values per output channel: +-alpha
    b.train()
    b(x).sum().backward()
    assert b.weight.grad is not None and b.weight.grad.abs().sum() > 0


def test_binary_weights_follow_loaded_state_dict():
    b = transformed("vit", TINY_VIT, ["binary_weights"])
    layer = next(iter(binary_layers(b.module).values()))
    state = {k: v.clone() for k, v in b.module.state_dict().items()}
    key = next(k for k in state if k.endswith(".weight") and state[k].shape == layer.weight.shape)
    state[key] = -state[key]
    b.module.load_state_dict(state)
    assert torch.equal(layer.signs_frozen, torch.where(layer.weight >= 0, 1.0, -1.0))


def test_binary_weights_select_block_linears_and_stay_out_of_int8():
    from edgekit.data import load_data
    from edgekit.quant import calibrate
    from edgekit.recipe import DataSpec

    b = transformed("vit", TINY_VIT, ["binary_weights"])
    names = list(binary_layers(b.module))
    assert len(names) == 2 * 6 and not any("classifier" in n for n in names)  # q,k,v,o,fc1,fc2 per block
    assert isinstance(b.module.hf.classifier, nn.Linear)
    with pytest.raises(UnsupportedOpError, match=r"no nn\.Linear"):
        get_transform("binary_weights").apply(bundle("vit", TINY_VIT).module, {"include": ["nothing*"]})
    # the quantizer recognizes the +-1 weights by value: those products stay float (exact, and 1-bit to the targets
    # that have a format for it); the patch convolution and the classifier are int8
    data = load_data(DataSpec("digits", "train", samples=16), b)
    cal = calibrate(b.module, ["pixel_values"], data, QuantSpec(), b)
    assert sorted(k for k in cal.encodings.tensors if k.endswith(".weight")) == [
        "hf.classifier/linear_12.weight",
        "hf.vit.embeddings.patch_embeddings.projection/conv2d.weight",
    ]


# --- export parity per target -----------------------------------------------------------------------------

EXPORT_CASES = {
    "vit-ecoformer": ("vit", TINY_VIT, ["ecoformer"]),
    # width 64: the [CLS] token (64 values) is a large-enough constant feeding concat, which broke coremltools'
    # weight metadata walk
    "vit-binary": ("vit", {**TINY_VIT, "hidden_size": 64}, ["binary_weights"]),
    "pvt-ecoformer-binary": ("pvt_v2", SMALL_PVT, ["ecoformer", "binary_weights"]),
}
LOWERED = {"coreml", "openvino"}


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    out = {}
    for case, (source, config, names) in EXPORT_CASES.items():
        b = transformed(source, config, names)
        work = tmp_path_factory.mktemp(case)
        out[case] = CompileContext(b, b.module, None, None, QuantSpec(), None, work)
    return out


@pytest.mark.parametrize("case", list(EXPORT_CASES))
@pytest.mark.parametrize("target", TARGETS)
def test_export_parity_per_target(contexts, case, target, tmp_path):
    ctx = contexts[case]
    t = get_target(target)
    ok, why = t.available()
    if not ok:
        pytest.skip(f"{target}: {why}")
    t.export(ctx, Precision.FP32, {}, tmp_path)
    art = Artifact.read(tmp_path)
    x = ctx.bundle.example_inputs(3, 8)[0]
    with torch.no_grad():
        ref = ctx.model(x).numpy()
    out = t.run(t.load(art), {ctx.bundle.inputs[0].name: x.numpy()})
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    info = art.options.get("binary_weights")
    n_binary = len(binary_layers(ctx.model))
    if not n_binary:
        assert info is None
        return
    if target in LOWERED:
        assert info == {**info, "layers": n_binary, "lowered": n_binary, "mode": "lowered"}
    else:
        assert info["mode"] == "simulated" and info["lowered"] == 0
    assert any(n.startswith(f"1-bit weights {info['mode']}") for n in art.notes)


def test_lowered_weights_take_one_bit(contexts, tmp_path):
    """The OpenVINO weights file shrinks by ~32x on the binarized tensors; CoreML's program too."""
    ctx = contexts["vit-binary"]
    n_bits = sum(m.weight.numel() for m in binary_layers(ctx.model).values())
    sizes = {}
    for target in ("onnx", "openvino", "coreml"):
        t = get_target(target)
        if not t.available()[0]:
            pytest.skip(f"{target} not installed")
        (tmp_path / target).mkdir()
        t.export(ctx, Precision.FP32, {}, tmp_path / target)
        sizes[target] = tmp_path / target
    onnx_bytes = (sizes["onnx"] / "model.onnx").stat().st_size
    ov_bin = (sizes["openvino"] / "model.bin").stat().st_size
    assert onnx_bytes > 4 * n_bits  # simulated: every +-1 in float32
    assert ov_bin < onnx_bytes - 3 * n_bits  # lowered: the binarized tensors take ~1/32 of that
    coreml_weights = sum(f.stat().st_size for f in sizes["coreml"].rglob("weight.bin"))
    assert coreml_weights < onnx_bytes - 3 * n_bits


def test_int8_artifacts_keep_the_binary_weights_one_bit(tmp_path):
    """The quantizer leaves +-1 products float, so an INT8 artifact still holds the +-1 tensors to lower."""
    from edgekit.data import load_data
    from edgekit.quant import calibrate
    from edgekit.recipe import DataSpec

    b = transformed("vit", {**TINY_VIT, "hidden_size": 64}, ["binary_weights"])
    data = load_data(DataSpec("digits", "train", samples=16), b)
    cal = calibrate(b.module, ["pixel_values"], data, QuantSpec(), b, "openvino")
    ctx = CompileContext(b, b.module, cal.sim, cal.encodings, QuantSpec(), data, tmp_path / "w")
    ctx.workdir.mkdir()
    (tmp_path / "ov").mkdir()
    t = get_target("openvino")
    art = t.export(ctx, Precision.INT8, {}, tmp_path / "ov")
    info = art.options["binary_weights"]
    assert info["mode"] == "lowered" and info["lowered"] == info["layers"] == 12
    x = data.inputs["pixel_values"][:8]
    out = t.run(t.load(art), {"pixel_values": x})
    ref = cal.sim(torch.from_numpy(x)).detach().numpy()
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()


# --- ops proxy --------------------------------------------------------------------------------------------


def test_ops_proxy_counts_linear_macs_exactly_and_binary_as_accumulations():
    lin = nn.Linear(8, 5)
    x = torch.randn(3, 7, 8)
    counted = count_ops(lambda: lin(x), lin).to_dict()
    assert counted["macs"] == 3 * 7 * 5 * 8 and counted["accumulations"] == 0
    binary = BinaryLinear(lin).eval()
    counted = count_ops(lambda: binary(x), binary).to_dict()
    assert counted["macs"] == 0 and counted["accumulations"] == 3 * 7 * 5 * 8


def test_attention_cost_grows_quadratically_for_softmax_and_linearly_for_ecoformer():
    lengths = (64, 256, 1024)
    soft = attention_cost_curve(bundle("vit", TINY_VIT).module, lengths)
    eco = attention_cost_curve(transformed("vit", TINY_VIT, ["ecoformer"]).module, lengths)
    assert soft["computed"] and eco["computed"]
    assert soft["core_growth"] == pytest.approx(2.0, abs=0.01)
    assert eco["core_growth"] == pytest.approx(1.0, abs=0.01)
    # softmax: QK^T and PV, 2 x H x T^2 x d; EcoFormer: no T^2 term, and its code products are accumulations
    t = lengths[-1]
    assert soft["points"][-1]["core"]["macs"] == 2 * t * t * TINY_VIT["hidden_size"]
    assert eco["points"][-1]["core"]["accumulations"] > 0
    assert eco["points"][-1]["core"]["macs"] < soft["points"][-1]["core"]["macs"] / 10
    pvt = attention_cost_curve(transformed("pvt_v2", SMALL_PVT, ["ecoformer"]).module, (49, 196, 784))
    assert pvt["computed"] and pvt["core_growth"] == pytest.approx(1.0, abs=0.01)


def test_ops_summary_of_a_binarized_model():
    b = transformed("vit", TINY_VIT, ["ecoformer", "binary_weights"])
    s = ops_summary(b.module, b.example_inputs(1, 8), lengths=(16, 64))
    groups = s["model"]["by_group"]
    binarized = sum(m.weight.numel() for m in binary_layers(b.module).values())
    tokens = (TINY_VIT["image_size"] // TINY_VIT["patch_size"]) ** 2 + 1
    assert groups["weights"]["accumulations"] == binarized * tokens  # every binarized product, batch 1
    assert groups["attention_core"]["accumulations"] > 0
    assert (
        s["model"]["energy_uj"]
        < ops_summary(bundle("vit", TINY_VIT).module, b.example_inputs(1, 8))["model"]["energy_uj"]
    )


def test_ecoformer_on_a_padded_text_encoder_ignores_padding():
    b = transformed("bert", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}, ["ecoformer"])
    names = [s.name for s in b.inputs]
    ids, mask = (b.example_inputs(2, 12)[names.index(n)] for n in ("input_ids", "attention_mask"))
    mask[1, 8:] = 0
    other = ids.clone()
    other[1, 8:] = 7  # different tokens under the padding

    def run(i: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": i, "attention_mask": mask}
        with torch.no_grad():
            return b.module(*[feeds[n] for n in names])

    torch.testing.assert_close(run(ids), run(other), rtol=1e-5, atol=1e-5)
