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


def preprocess(path: Path, size: int) -> np.ndarray:
    """Resize (shorter side size*256/224, bicubic), centre-crop size x size, ImageNet-normalize; CHW float32."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        short = round(size * 256 / 224)
        w, h = im.size
        scale = short / min(w, h)
        im = im.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        x = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


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
