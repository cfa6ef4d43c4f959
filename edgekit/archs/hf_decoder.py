"""HF OPT decoders as next-token predictors: ``(input_ids, attention_mask) -> logits of the next token``.

The graph runs the causal decoder over a right-padded prefix, takes the hidden state of the last real token
(position ``sum(attention_mask) - 1``) and applies the LM head there only, so the output is ``[batch, vocab]``:
top-1 against the true next token of real text is the task metric (``text-lm`` data), and every target runs
the same one-output graph. No OPT weights can be downloaded here, so the model is built from a config and
trained on real text by the recipe; it uses the MiniLM package's WordPiece tokenizer (vocabulary 30522).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelError
from .base import ARCHS, ArchFamily, ModelBundle, count_params
from .hf_common import make_config, transformers
from .hf_text import TEXT_INPUTS
from .packaged import minilm_dir

SMALL_OPT = {
    "vocab_size": 30522,
    "hidden_size": 128,
    "word_embed_proj_dim": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "ffn_dim": 512,
    "max_position_embeddings": 128,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "pad_token_id": 0,  # the WordPiece tokenizer's [PAD]
    "bos_token_id": 101,  # [CLS]
    "eos_token_id": 102,  # [SEP]
}


class NextToken(torch.nn.Module):
    """The decoder, then the LM head on the last real token of each (right-padded) sequence."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.hf.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        last = (attention_mask.sum(1) - 1).clamp(min=0)
        index = last.view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        return self.hf.lm_head(states.gather(1, index).squeeze(1))


def _bundle(hf_model: torch.nn.Module, tok: str) -> ModelBundle:
    return ModelBundle(
        NextToken(hf_model).eval(),
        TEXT_INPUTS,
        family="opt",
        task="next-token",
        output_name="logits",
        tokenizer_dir=tok,
        info={"hf_class": type(hf_model).__name__, "parameters": count_params(hf_model)},
    )


def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    if task not in (None, "next-token"):
        raise ModelError(f"opt models in edgekit are next-token predictors; task '{task}' is not supported")
    tf = transformers()
    tok = minilm_dir("opt (tokenizer)")
    config = make_config("opt", SMALL_OPT, overrides)
    torch.manual_seed(0)
    return _bundle(tf.OPTForCausalLM(config), tok)


def load(path: str, task: str | None) -> ModelBundle:
    tf = transformers()
    try:
        model = tf.OPTForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load an OPT decoder from '{path}': {str(exc).splitlines()[0]}") from None
    return _bundle(model.eval(), minilm_dir("opt (tokenizer)"))


ARCHS.add(
    "opt",
    ArchFamily(
        "opt", build, "HF OPT decoder predicting the next token (MiniLM WordPiece vocab)", load, ("next-token",)
    ),
)
