"""``images:DIR``: a folder of the user's images, labelled by class sub-folder, preprocessed by the checkpoint's own
image processor (or resized and normalized when it has none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error
from tests.hf_archs import save_checkpoint

pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")


def _photo(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folders")
    for i, cls in enumerate(["dog", "cat", "cat", "bird", "dog", "cat"]):  # class sub-folders, jpg and png
        (root / "labelled" / cls).mkdir(parents=True, exist_ok=True)
        _photo(root / "labelled" / cls / f"{i}.{'png' if i % 2 else 'jpg'}", i)
    (root / "flat").mkdir()
    for i in range(3):
        _photo(root / "flat" / f"{i}.png", 10 + i)
    (root / "flat" / "notes.txt").write_text("not an image")
    save_checkpoint("resnet", root / "ckpt")  # saves a ViTImageProcessor resizing to 32x32
    return root


def _bundle(path: Path):
    from edgekit.archs import load_model
    from edgekit.recipe import ModelSpec

    return load_model(ModelSpec(str(path)))


def _load(text: str, bundle, **kw):
    from edgekit.data import load_data
    from edgekit.recipe import DataSpec

    return load_data(DataSpec.parse(text, **kw), bundle)


def test_class_folders_are_labels_and_the_processor_preprocesses(folders):
    from transformers import AutoImageProcessor

    b = _bundle(folders / "ckpt")
    assert b.image_processor_dir == str(folders / "ckpt")
    ds = _load(f"images:{folders / 'labelled'}", b)
    x = ds.inputs["pixel_values"]
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.float32
    assert ds.labels.tolist() == [0, 1, 1, 1, 2, 2]  # bird, cat x3, dog x2: sorted folder index
    first = sorted((folders / "labelled" / "bird").iterdir())[0]
    proc = AutoImageProcessor.from_pretrained(str(folders / "ckpt"))
    with Image.open(first) as im:
        ref = proc(images=[im.convert("RGB")], return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(x[0], ref, atol=1e-6)
    assert "image processor" in ds.description


def test_model_class_names_label_the_folders(folders):
    b = _bundle(folders / "ckpt")
    b.label2id = {"bird": 4, "cat": 0, "dog": 2, "fish": 1}
    assert _load(f"images:{folders / 'labelled'}", b).labels.tolist() == [4, 0, 0, 0, 2, 2]


def test_flat_folder_has_no_labels_and_samples(folders):
    b = _bundle(folders / "ckpt")
    ds = _load(f"images:{folders / 'flat'}", b)
    assert len(ds) == 3 and ds.labels is None
    assert len(_load(f"images:{folders / 'labelled'}", b, samples=4)) == 4


def test_without_processor_resize_and_normalize(folders, tmp_path):
    from edgekit.data.photos import preprocess

    ckpt = tmp_path / "ckpt"
    shutil.copytree(folders / "ckpt", ckpt)
    (ckpt / "preprocessor_config.json").unlink()
    cfg = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "image_size": 24}))
    b = _bundle(ckpt)
    assert b.image_processor_dir is None and list(b.inputs[0].shape) == ["batch", 3, 24, 24]
    ds = _load(f"images:{folders / 'flat'}", b)
    assert ds.inputs["pixel_values"].shape == (3, 3, 24, 24)
    np.testing.assert_allclose(ds.inputs["pixel_values"][0], preprocess(folders / "flat" / "0.png", 24), atol=1e-6)


@pytest.mark.parametrize(
    ("where", "pattern"),
    [("missing", "does not exist"), ("empty", "has no images"), ("broken", "cannot read image")],
)
def test_bad_folders_are_one_line(folders, tmp_path, run_cli, where, pattern):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"not a jpeg")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(folders / "ckpt", ckpt)
    if where == "broken":
        (ckpt / "preprocessor_config.json").unlink()  # the resize path reads the file itself
    code, _, err = run_cli(
        "export", ckpt, "--target", "onnx", "--precision", "fp32", "--no-bench", "--val", f"images:{tmp_path / where}",
        "--out", tmp_path / "r",
    )  # fmt: skip
    assert_one_line_error(code, err, pattern)


def test_export_calibrates_and_validates_on_a_folder(folders, run_cli, tmp_path):
    out = tmp_path / "run"
    data = f"images:{folders / 'labelled'}"
    code, _, err = run_cli(
        "export", folders / "ckpt", "--target", "onnx", "--precision", "fp32,int8", "--no-bench",
        "--calib", data, "--val", data, "--out", out,
    )  # fmt: skip
    assert code in (0, 1), err  # a random-init int8 may miss the budget (exit 1); it must not error
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "top1"  # the folders labelled the set
    assert report["validation"]["samples"] == 6 and "images" in report["validation"]["data"]
    assert [r["status"] for r in report["rows"] if r["precision"] == "fp32"] == ["ok"]
