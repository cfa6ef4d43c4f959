import gzip

import numpy as np
import pytest

from edgekit.archs import load_model
from edgekit.data import load_data
from edgekit.data.images import read_idx
from edgekit.data.text import read_labelled_csv
from edgekit.errors import CalibrationError
from edgekit.recipe import DataSpec, ModelSpec

from .conftest import TINY_VIT


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], ">u4").tobytes()
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + arr.tobytes()))
    np.testing.assert_array_equal(read_idx(path), arr)
    path.write_bytes(gzip.compress(header + arr.tobytes()[:-1]))
    with pytest.raises(CalibrationError, match="truncated"):
        read_idx(path)


def test_fashion_mnist_real_test_split_resized_for_the_model():
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    ds = load_data(DataSpec("fashion-mnist", "test", samples=50), bundle)
    assert ds.inputs["pixel_values"].shape == (50, 1, 8, 8)
    assert ds.labels is not None and set(np.unique(ds.labels)) <= set(range(10))


def test_missing_fashion_mnist_says_how_to_fetch(tmp_path):
    bundle = load_model(ModelSpec("vit", TINY_VIT))
    with pytest.raises(CalibrationError, match="make data"):
        load_data(DataSpec("fashion-mnist", "test", path=str(tmp_path)), bundle)


def test_labelled_csv_label_first_or_last(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('"1","good, very"\n"-1","bad"\nheader,row\n')
    texts, labels = read_labelled_csv(p)
    assert texts == ["good, very", "bad"] and labels.tolist() == [1, 0]
    p.write_text("fine,1\nawful,0\n")
    assert read_labelled_csv(p)[1].tolist() == [1, 0]
