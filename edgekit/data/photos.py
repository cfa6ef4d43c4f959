"""``photos``: real photographs that ship inside installed packages, preprocessed the ImageNet way.

matplotlib's ``grace_hopper.jpg``, scikit-learn's ``china.jpg`` and ``flower.jpg`` and scikit-image's photos
(``edgekit[vision]``). Split ``test``: 8 photos of things ImageNet has classes for (a cat, coffee, a rocket, a
motorcycle, ...); split ``train``: 10 other real photographs (no photo in both), for calibration. Each is resized
so its shorter side is ``size * 256/224``, centre-cropped to the model's input size and normalized with the
ImageNet mean/std, per channel. There are no labels: validate with top-1 agreement and cosine against the FP32
model, which is what "does the deployed model still say what PyTorch said on this photo" means.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..archs.base import ModelBundle
from ..errors import CalibrationError
from ..recipe import DataSpec
from .base import DATA, DataSet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# (package, path inside it) of every photo we know of, per split; missing packages are skipped. "test" holds
# photos of objects an ImageNet model has classes for; "train" (calibration) holds the other real photographs.
_SK = "skimage"
PHOTOS = {
    "test": (
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
        ("sklearn", "datasets/images/china.jpg"),
        ("sklearn", "datasets/images/flower.jpg"),
        *(
            (_SK, f"data/{n}")
            for n in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png")
        ),
    ),
    "train": tuple(
        (_SK, f"data/{n}")
        for n in (
            "motorcycle_right.png",
            "camera.png",
            "hubble_deep_field.jpg",
            "retina.jpg",
            "ihc.png",
            "brick.png",
            "grass.png",
            "gravel.png",
            "moon.png",
            "coins.png",
        )
    ),
}


def photo_files(split: str = "test") -> list[Path]:
    if split not in PHOTOS:
        raise CalibrationError(f"photos has splits {', '.join(PHOTOS)}, not '{split}'")
    files = []
    for package, rel in PHOTOS[split]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        f = Path(next(iter(spec.submodule_search_locations))) / rel
        if f.is_file():
            files.append(f)
    return files


def preprocess(
    path: Path,
    size: int | tuple[int, int],
    mean: np.ndarray = IMAGENET_MEAN,
    std: np.ndarray = IMAGENET_STD,
    mode: str = "RGB",
) -> np.ndarray:
    """Resize (shorter side * 256/224, bicubic), centre-crop to ``size`` (an int: square, or (height, width)),
    normalize per channel; CHW float32. ``mode`` "L" reads a single grey channel."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size
    with Image.open(path) as im:
        im = im.convert(mode)
        short = round(max(h, w) * 256 / 224)
        iw, ih = im.size
        scale = short / min(iw, ih)
        im = im.resize((max(short, round(iw * scale)), max(short, round(ih * scale))), Image.BICUBIC)
        iw, ih = im.size
        left, top = (iw - w) // 2, (ih - h) // 2
        x = np.asarray(im.crop((left, top, left + w, top + h)), np.float32) / 255.0
    x = x[..., None] if x.ndim == 2 else x
    return ((x - mean) / std).astype(np.float32).transpose(2, 0, 1)


@DATA.register("photos")
def photos(spec: DataSpec, bundle: ModelBundle) -> DataSet:
    shape = bundle.inputs[0].shape
    if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[-1], int):
        raise CalibrationError(f"photos are RGB images; the model's input {bundle.inputs[0].name} has shape {shape}")
    files = photo_files(spec.split)
    if not files:
        raise CalibrationError(
            f"no packaged photos for split '{spec.split}' (scikit-image ships them: edgekit[vision])"
        )
    files = files[: spec.samples] if spec.samples else files
    x = np.stack([preprocess(f, int(shape[-1])) for f in files])
    return DataSet(
        {bundle.inputs[0].name: np.ascontiguousarray(x)}, None, f"photos/{spec.split} ({len(files)} real photos)"
    )
