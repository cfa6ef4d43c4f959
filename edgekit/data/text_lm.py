"""Next-token data from real text: every prefix of every sentence, labelled with the token that follows it.

``{source: text-lm, split: CORPUS[/train|/test]}`` reads a fetched corpus (calibration/fetch_text.sh) or
``path: FILE.csv`` (``text,label`` rows; the label is ignored). The train/test parts are the same fixed
sentence-level 80/20 split as the ``text`` source, so no test sentence is ever trained on. Each sentence is
tokenized with the model's tokenizer (no special tokens), prefixed with the BOS id, and cut at every position
from ``MIN_CONTEXT`` on: the prefix (right-padded to ``max_length``) is the input, the next token the label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError
from ..recipe import DataSpec
from .base import DATA, DataSet, data_dir, fixed_split
from .text import load_tokenizer, read_labelled_csv

MIN_CONTEXT = 2  # BOS + at least one real token before the predicted one


def next_token_pairs(token_lists: list[list[int]], bos: int, max_length: int) -> tuple[np.ndarray, ...]:
    """(input_ids, attention_mask, labels) for every prefix of every token list."""
    rows, labels = [], []
    for tokens in token_lists:
        seq = [bos, *tokens][:max_length]
        for cut in range(MIN_CONTEXT, len(seq)):
            rows.append(seq[:cut])
            labels.append(seq[cut])
    ids = np.zeros((len(rows), max_length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask, np.asarray(labels, dtype=np.int64)


@DATA.register("text-lm")
def text_lm(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    name, _, part = spec.split.partition("/")
    path = Path(spec.path) if spec.path else data_dir() / "text" / f"{name}.csv"
    if not path.is_file():
        raise CalibrationError(
            f"text corpus '{path}' not found; fetch the corpora with `make data` (calibration/fetch_text.sh) "
            "or set path: to a text,label CSV"
        )
    if part not in ("", "all", "train", "test"):
        raise CalibrationError(f"text-lm part must be train, test or all, not '{part}'")
    if bundle.tokenizer_dir is None:
        raise CalibrationError("text-lm data needs a model with a tokenizer (e.g. the opt family)")
    if {s.name for s in bundle.inputs} != {"input_ids", "attention_mask"}:
        raise CalibrationError("text-lm data feeds input_ids and attention_mask; the model declares other inputs")
    texts, _ = read_labelled_csv(path)
    if part in ("train", "test"):
        texts = [texts[i] for i in np.sort(fixed_split(len(texts), part))]
    if not texts:
        raise CalibrationError(f"'{path}' has no 'text,label' rows")
    tok = load_tokenizer(bundle)
    token_lists = tok(texts, add_special_tokens=False, truncation=True, max_length=spec.max_length)["input_ids"]
    bos = tok.cls_token_id if tok.bos_token_id is None else tok.bos_token_id
    ids, mask, labels = next_token_pairs(token_lists, int(bos), spec.max_length)
    where = f"{path.stem}{f' ({part})' if part else ''}"
    return DataSet({"input_ids": ids, "attention_mask": mask}, labels, f"next tokens of {where}")
