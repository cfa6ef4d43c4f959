"""``images:DIR``: a folder of the user's own images (jpg/png/...), labelled by class sub-folder when it has them.

``DIR/cat/1.jpg, DIR/dog/2.png`` gives labels from the folder names: the model's own ``label2id`` when every
folder name is one of its classes, else the sorted folder index. Images directly in ``DIR`` have no labels
(validation then compares against the FP32 model). Images are preprocessed by the checkpoint's own image
processor (transformers AutoImageProcessor, when the checkpoint has preprocessor_config.json); otherwise the
``photos`` way: resize, centre-crop to the model's input size and normalize (ImageNet mean/std for RGB, the
Fashion-MNIST statistics for one-channel models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError
from ..recipe import DataSpec
from .base import DATA, DataSet, sample_indices
from .images import FMNIST_MEAN, FMNIST_STD
from .photos import preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_CHUNK = 32  # images per image-processor call: bounded memory for large folders


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_images(root: Path) -> tuple[list[Path], list[str] | None]:
    """Image files and, when ``root`` has class sub-folders holding images, each file's class name."""
    classes = [d for d in sorted(root.iterdir()) if d.is_dir() and _images_in(d)]
    if not classes:
        return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), None
    files, names = [], []
    for d in classes:
        found = _images_in(d)
        files += found
        names += [d.name] * len(found)
    return files, names


def label_ids(names: list[str], label2id: dict[str, int] | None) -> np.ndarray:
    """The model's class ids when it names every folder's class; else the sorted folder index."""
    if label2id and set(names) <= set(label2id):
        return np.asarray([label2id[n] for n in names], dtype=np.int64)
    order = {n: i for i, n in enumerate(sorted(set(names)))}
    return np.asarray([order[n] for n in names], dtype=np.int64)


@DATA.register("images")
def image_folder(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    root = Path(spec.path or spec.split)  # `images:DIR` parses DIR into the split
    if not root.is_dir():
        raise CalibrationError(f"image folder '{root}' does not exist; pass images:DIR with a folder of jpg/png files")
    first = bundle.inputs[0]
    if len(first.shape) != 4 or not all(isinstance(d, int) for d in first.shape[1:]):
        raise CalibrationError(
            f"images:DIR feeds a (batch, channels, height, width) image input; the model's '{first.name}' is "
            f"{list(first.shape)}"
        )
    files, names = list_images(root)
    if not files:
        raise CalibrationError(f"image folder '{root}' has no images ({', '.join(IMAGE_SUFFIXES)})")
    idx = sample_indices(len(files), spec.samples, spec.seed)  # before decoding: folders can be large
    files = [files[i] for i in idx]
    labels = None if names is None else label_ids([names[i] for i in idx], bundle.label2id)
    if bundle.image_processor_dir:
        x, how = _with_processor(files, bundle.image_processor_dir), "the checkpoint's image processor"
    else:
        x, how = _resized(files, first.shape[1:]), "resize + crop + normalize"
    description = f"images {root} ({len(files)} images{', labelled by folder' if labels is not None else ''}; {how})"
    return DataSet({first.name: np.ascontiguousarray(x, dtype=np.float32)}, labels, description)


def _resized(files: list[Path], chw: tuple) -> np.ndarray:
    c, h, w = (int(d) for d in chw)
    if c == 1:
        grey = (np.float32(FMNIST_MEAN), np.float32(FMNIST_STD), "L")
        return np.stack([_read(preprocess, f, (h, w), *grey) for f in files])
    if c != 3:
        raise CalibrationError(f"images:DIR gives 1- or 3-channel images; the model takes {c} channels")
    return np.stack([_read(preprocess, f, (h, w)) for f in files])


def _read(fn, path: Path, *args):
    try:
        return fn(path, *args)
    except OSError as exc:  # PIL's UnidentifiedImageError is an OSError
        raise CalibrationError(f"cannot read image '{path}': {str(exc).splitlines()[0]}") from None


def _with_processor(files: list[Path], processor_dir: str) -> np.ndarray:
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(processor_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CalibrationError(
            f"cannot load the image processor of '{processor_dir}': {str(exc).splitlines()[0]}"
        ) from None
    out = []
    for start in range(0, len(files), _CHUNK):
        images = [_read(_rgb, f) for f in files[start : start + _CHUNK]]
        out.append(np.asarray(processor(images=images, return_tensors="np")["pixel_values"], dtype=np.float32))
        for im in images:
            im.close()
    return np.concatenate(out)


def _rgb(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")
