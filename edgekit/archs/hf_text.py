"""HF BERT-family encoders as sentence embedders (mean pooling over the mask, L2-normalized)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelError
from ..recipe import TensorSpec
from .base import ARCHS, ArchFamily, ModelBundle, count_params
from .hf_common import make_config, transformers

SMALL_BERT = {
    "vocab_size": 30522,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 128,
}


# token ids and the padding mask, both (batch, sequence) int64: every HF text model edgekit builds takes these
TEXT_INPUTS = (
    TensorSpec("input_ids", ("batch", "sequence"), "int64"),
    TensorSpec("attention_mask", ("batch", "sequence"), "int64"),
)


class SentenceEmbedder(torch.nn.Module):
    """``(input_ids, attention_mask) -> embedding``: the sentence-transformers pooling, inside the graph."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)


def _bundle(model: torch.nn.Module, tokenizer_dir: str | None) -> ModelBundle:
    return ModelBundle(
        SentenceEmbedder(model).eval(),
        TEXT_INPUTS,
        family="bert",
        task="embedding",
        output_name="embedding",
        tokenizer_dir=tokenizer_dir,
        info={"hf_class": type(model).__name__, "parameters": count_params(model)},
    )


def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    if task not in (None, "embedding"):
        raise ModelError(f"bert models in edgekit are sentence embedders; task '{task}' is not supported")
    tf = transformers()
    torch.manual_seed(0)
    config = make_config("bert", SMALL_BERT, overrides)
    return _bundle(tf.AutoModel.from_config(config, add_pooling_layer=False), None)


def load(path: str, task: str | None) -> ModelBundle:
    tf = transformers()
    try:
        model = tf.AutoModel.from_pretrained(
            path, local_files_only=True, attn_implementation="eager", add_pooling_layer=False
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a BERT encoder from '{path}': {str(exc).splitlines()[0]}") from None
    return _bundle(model.eval(), path)


ARCHS.add("bert", ArchFamily("bert", build, "HF BERT encoder as a sentence embedder (MiniLM)", load, ("embedding",)))
