"""Image sources: Fashion-MNIST (IDX files fetched by calibration/fetch_fashion_mnist.sh) and sklearn digits.

Images are normalized and, when the model's input spec asks for another size or channel count, resized
(bilinear) and repeated over channels, so one data set serves every vision recipe.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError, InputSpecError
from ..recipe import DataSpec
from .base import DATA, DataSet, data_dir, fixed_split, sample_indices

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims, then big-endian uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CalibrationError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise CalibrationError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(dims))} values)")
    return data.reshape(dims)


def fashion_mnist_dir(spec: DataSpec) -> Path:
    return Path(spec.path) if spec.path else data_dir() / "fashion-mnist"


def to_model_images(images: np.ndarray, bundle: ModelBundle, mean: float, std: float) -> np.ndarray:
    """uint8/float [N, H, W] -> normalized float32 [N, C, H', W'] as the model's first input declares."""
    spec = bundle.inputs[0]
    if len(spec.shape) != 4:
        raise InputSpecError(f"image data needs a 4-D image input; the model's '{spec.name}' is {list(spec.shape)}")
    x = (images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0) - mean) / std
    x = x[:, None]
    _, c, h, w = spec.shape
    if (isinstance(h, int) and h != x.shape[2]) or (isinstance(w, int) and w != x.shape[3]):
        import torch

        x = torch.nn.functional.interpolate(
            torch.from_numpy(x), size=(h, w), mode="bilinear", align_corners=False
        ).numpy()
    if isinstance(c, int) and c != 1:
        x = np.repeat(x, c, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


@DATA.register("fashion-mnist")
def fashion_mnist(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    if spec.split not in _FMNIST_FILES:
        raise CalibrationError(f"fashion-mnist has splits 'train' and 'test', not '{spec.split}'")
    root = fashion_mnist_dir(spec)
    img_file, lab_file = (root / f for f in _FMNIST_FILES[spec.split])
    if not img_file.is_file() or not lab_file.is_file():
        raise CalibrationError(
            f"Fashion-MNIST not found in '{root}'; fetch it with `make data` "
            "(runs calibration/fetch_fashion_mnist.sh) or set EDGEKIT_DATA"
        )
    images, labels = read_idx(img_file), read_idx(lab_file).astype(np.int64)
    idx = sample_indices(len(images), spec.samples, spec.seed)  # before resizing: 60k x 224^2 does not fit
    images, labels = images[idx], labels[idx]
    x = to_model_images(images, bundle, FMNIST_MEAN, FMNIST_STD)
    return DataSet({bundle.inputs[0].name: x}, labels, f"fashion-mnist/{spec.split}")


@DATA.register("digits")
def digits(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    """sklearn's 1797 8x8 digits: a small real labelled set for fast tests."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = fixed_split(len(d.target), "train" if spec.split == "train" else "test")
    images = (d.images[idx] / 16.0).astype(np.float32)
    x = to_model_images(images, bundle, 0.3, 0.4)
    return DataSet({bundle.inputs[0].name: x}, d.target[idx].astype(np.int64), f"digits/{spec.split}")
