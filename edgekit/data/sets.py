"""Build calibration and validation sets as ``.npz`` files that a recipe's data spec points at (``source: npz``).

Sources (``--kind``, inferred from the path when omitted):

* ``images``: a folder of images; one sub-folder per class gives labels (``root/<class>/*.png``), a flat folder
  gives none;
* ``idx``: an IDX image file (optionally gzipped), labels from ``--labels`` (another IDX file);
* ``arrays``: a ``.npy`` array, or an ``.npz`` holding ``x`` (or its only array) and optionally ``labels``;
* ``text-csv``: a labelled ``text,label`` CSV, tokenized with ``--tokenizer`` (a directory, or ``minilm``).

Sampling is class-balanced (the same count from every class, the remainder spread over a seeded choice of
classes) with a fixed seed; ``--part train|test`` first takes the fixed 80/20 split every edgekit source uses, so a
calibration set (train) and a validation set (test) built from one source never overlap. The result is cached
under ``$EDGEKIT_DATA/sets/<key>.npz``, the key being the sha256 of the source's bytes and of every option, so a
rebuild with the same inputs costs one file copy. A ``.json`` beside the output records where it came from.

    python calibration/make_set.py ~/.cache/edgekit/fashion-mnist/train-images-idx3-ubyte.gz \\
        --labels ~/.cache/edgekit/fashion-mnist/train-labels-idx1-ubyte.gz --samples 512 --out calib.npz
    python -m edgekit.data.sets my_images/ --samples 256 --size 32 --channels 3 --part test --out val.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError, EdgekitError
from ..registry import Registry
from .base import data_dir, fixed_split, sample_indices

FORMAT = "edgekit-set/1"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class SetOptions:
    """Everything that shapes the output; all of it goes into the cache key."""

    kind: str
    samples: int | None = None
    seed: int = 0
    part: str = "all"  # all | train | test (the fixed 80/20 split)
    input_name: str | None = None  # default: pixel_values for images, x for arrays
    size: int | None = None  # images: resize to size x size (default: keep)
    channels: int = 1
    mean: float = 0.2860  # images: (x / 255 - mean) / std; defaults are edgekit's Fashion-MNIST normalization
    std: float = 0.3530
    tokenizer: str | None = None  # text: a tokenizer directory or "minilm"
    max_length: int = 64


@dataclass
class RawSet:
    items: Any  # np.ndarray of images / arrays, or a list of strings
    labels: np.ndarray | None
    files: list[Path]  # whose bytes identify the source


Reader = Callable[[Path, "argparse.Namespace"], RawSet]
READERS: Registry[Reader] = Registry("set source kind")


def _read_image(path: Path, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)


@READERS.register("images")
def read_images(path: Path, a: argparse.Namespace) -> RawSet:
    if not path.is_dir():
        raise CalibrationError(f"image folder '{path}' does not exist")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if classes:
        files = [(f, i) for i, c in enumerate(classes) for f in sorted((path / c).rglob("*"))]
    else:
        files = [(f, -1) for f in sorted(path.iterdir())]
    files = [(f, i) for f, i in files if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise CalibrationError(f"'{path}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = [_read_image(f, a.channels) for f, _ in files]
    shapes = {im.shape for im in images}
    if len(shapes) > 1 and a.size is None:
        raise CalibrationError(f"images in '{path}' have {len(shapes)} different sizes; pass --size to resize them")
    if len(shapes) > 1:
        images = [_resize_one(im, a.size) for im in images]
    labels = np.asarray([i for _, i in files], dtype=np.int64) if classes else None
    return RawSet(np.stack(images), labels, [f for f, _ in files])


def _resize_one(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)


@READERS.register("idx")
def read_idx_files(path: Path, a: argparse.Namespace) -> RawSet:
    from .images import read_idx

    if not path.is_file():
        raise CalibrationError(f"IDX file '{path}' does not exist")
    images = read_idx(path)
    labels, files = None, [path]
    if a.labels:
        labels = read_idx(Path(a.labels)).astype(np.int64)
        files.append(Path(a.labels))
        if len(labels) != len(images):
            raise CalibrationError(f"'{a.labels}' has {len(labels)} labels for {len(images)} images in '{path}'")
    return RawSet(images, labels, files)


@READERS.register("arrays")
def read_arrays(path: Path, a: argparse.Namespace) -> RawSet:
    if not path.is_file():
        raise CalibrationError(f"array file '{path}' does not exist")
    try:
        if path.suffix == ".npy":
            x, labels = np.load(path), None
        else:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            labels = arrays.pop("labels", None)
            x = arrays.pop("x", None)
            if x is None and len(arrays) == 1:
                x = next(iter(arrays.values()))
            if x is None:
                raise CalibrationError(f"'{path}' holds {sorted(arrays)}; name the data array 'x' (and 'labels')")
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"'{path}' is not a readable .npy/.npz file: {exc}") from None
    files = [path]
    if a.labels:
        labels = np.load(a.labels)
        files.append(Path(a.labels))
    if labels is not None and len(labels) != len(x):
        raise CalibrationError(f"'{path}': {len(labels)} labels for {len(x)} samples")
    return RawSet(x, None if labels is None else np.asarray(labels).astype(np.int64), files)


@READERS.register("text-csv")
def read_text_csv(path: Path, a: argparse.Namespace) -> RawSet:
    from .text import read_labelled_csv

    if not path.is_file():
        raise CalibrationError(f"text CSV '{path}' does not exist")
    texts, labels = read_labelled_csv(path)
    if not texts:
        raise CalibrationError(f"'{path}' has no 'text,label' rows")
    return RawSet(texts, labels, [path])


def infer_kind(path: Path) -> str:
    if path.is_dir():
        return "images"
    if path.suffix == ".csv":
        return "text-csv"
    if path.suffix in (".npy", ".npz"):
        return "arrays"
    if "idx" in path.name or "ubyte" in path.name:
        return "idx"
    raise CalibrationError(f"cannot tell what '{path}' is; pass --kind images|idx|arrays|text-csv")


def balanced_indices(labels: np.ndarray | None, total: int, n: int | None, seed: int) -> np.ndarray:
    """``n`` indices, the same number per class (the remainder to a seeded choice of classes); sorted."""
    if labels is None or n is None or n >= total:
        return sample_indices(total, n, seed)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    base, extra = divmod(n, len(classes))
    bonus = set(rng.permutation(classes)[:extra].tolist())
    chosen, short = [], 0
    for c in classes:
        members = np.flatnonzero(labels == c)
        want = base + (1 if c in bonus else 0)
        take = rng.permutation(members)[:want]
        short += want - len(take)
        chosen.append(take)
    picked = np.concatenate(chosen)
    if short:  # small classes: fill from what is left, still seeded
        rest = np.setdiff1d(np.arange(total), picked)
        picked = np.concatenate([picked, rng.permutation(rest)[:short]])
    return np.sort(picked)


def content_key(files: list[Path], options: SetOptions) -> str:
    h = hashlib.sha256(FORMAT.encode())
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(json.dumps(asdict(options), sort_keys=True).encode())
    return h.hexdigest()


def _images_to_inputs(images: np.ndarray, o: SetOptions) -> dict[str, np.ndarray]:
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    if x.ndim == 3:
        x = x[:, None]  # N, 1, H, W
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    x = (x - o.mean) / o.std
    if o.size is not None and x.shape[-2:] != (o.size, o.size):
        import torch

        x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(o.size, o.size), mode="bilinear").numpy()
    if x.shape[1] != o.channels:
        if x.shape[1] != 1:
            raise CalibrationError(f"images have {x.shape[1]} channels; --channels {o.channels} cannot be made of them")
        x = np.repeat(x, o.channels, axis=1)
    return {o.input_name or "pixel_values": np.ascontiguousarray(x, dtype=np.float32)}


def _texts_to_inputs(texts: list[str], o: SetOptions) -> dict[str, np.ndarray]:
    if not o.tokenizer:
        raise CalibrationError("text sets need --tokenizer (a tokenizer directory, or 'minilm')")
    tok_dir = o.tokenizer
    if tok_dir == "minilm":
        from ..archs.packaged import minilm_dir

        tok_dir = minilm_dir()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    enc = tok(texts, padding="max_length", truncation=True, max_length=o.max_length, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def build(raw: RawSet, o: SetOptions) -> dict[str, np.ndarray]:
    """Split, sample (class-balanced, seeded) and convert to model inputs (+ ``labels``)."""
    total = len(raw.items)
    pool = np.arange(total) if o.part == "all" else np.sort(fixed_split(total, o.part))
    labels = None if raw.labels is None else raw.labels[pool]
    pick = pool[balanced_indices(labels, len(pool), o.samples, o.seed)]
    if o.kind == "text-csv":
        out = _texts_to_inputs([raw.items[i] for i in pick], o)
    elif o.kind == "arrays" and np.asarray(raw.items).dtype != np.uint8 and o.size is None:
        out = {o.input_name or "x": np.ascontiguousarray(np.asarray(raw.items)[pick])}
    else:
        out = _images_to_inputs(np.asarray(raw.items)[pick], o)
    if raw.labels is not None:
        out["labels"] = raw.labels[pick]
    return out


def make_set(source: Path, out: Path, o: SetOptions, a: argparse.Namespace) -> dict[str, Any]:
    """Write ``out`` (.npz) and ``out.json``; reuse the cached build when the key matches."""
    raw = READERS.get(o.kind)(source, a)
    key = content_key(raw.files, o)
    cache = data_dir() / "sets" / f"{key}.npz"
    hit = cache.is_file()
    if not hit:
        arrays = build(raw, o)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{key}.{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, cache)
    with np.load(cache) as z:
        counts = {k: list(z[k].shape) for k in z.files}
        labels = z["labels"] if "labels" in z.files else None
    per_class = None if labels is None else {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True))}
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache, out)
    record = {
        "format": FORMAT,
        "source": str(source),
        "key": key,
        "cached": hit,
        "options": asdict(o),
        "arrays": counts,
        "per_class": per_class,
    }
    Path(f"{out}.json").write_text(json.dumps(record, indent=1))
    return record


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_set", description="Build a class-balanced calibration/validation .npz for a recipe's data spec."
    )
    p.add_argument("source", help="image folder, IDX file, .npy/.npz, or labelled text CSV")
    p.add_argument("--out", required=True, help="output .npz (a .json with its provenance is written beside it)")
    p.add_argument("--kind", choices=sorted(READERS.names()), help="source kind (default: from the path)")
    p.add_argument("--labels", help="labels file for idx (IDX) or arrays (.npy) sources")
    p.add_argument("--samples", type=int, help="how many samples (default: all), class-balanced")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", choices=["all", "train", "test"], default="all", help="the fixed 80/20 split first")
    p.add_argument("--input-name", help="array name = the model's input (default pixel_values, or x for arrays)")
    p.add_argument("--size", type=int, help="images: resize to SIZE x SIZE")
    p.add_argument("--channels", type=int, default=1, help="images: 1 or 3 (grey images are repeated)")
    p.add_argument("--mean", type=float, default=SetOptions.mean)
    p.add_argument("--std", type=float, default=SetOptions.std)
    p.add_argument("--tokenizer", help="text: tokenizer directory, or 'minilm' (the MiniLM package's)")
    p.add_argument("--max-length", type=int, default=64, help="text: tokens per sample")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    source = Path(a.source).expanduser()
    try:
        if a.samples is not None and a.samples <= 0:
            raise CalibrationError(f"--samples must be positive, got {a.samples}")
        options = SetOptions(
            kind=a.kind or infer_kind(source),
            samples=a.samples,
            seed=a.seed,
            part=a.part,
            input_name=a.input_name,
            size=a.size,
            channels=a.channels,
            mean=a.mean,
            std=a.std,
            tokenizer=a.tokenizer,
            max_length=a.max_length,
        )
        rec = make_set(source, Path(a.out), options, a)
    except EdgekitError as exc:
        print(f"make_set: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exc.exit_code
    shapes = ", ".join(f"{k} {v}" for k, v in rec["arrays"].items())
    print(f"{a.out}: {shapes}{' (from cache)' if rec['cached'] else ''}; per class {rec['per_class']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
