"""The MNIST sample shipped with the package: its arrays, split, normalisation, and the script that builds it."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import socket
from pathlib import Path

import numpy as np
import pytest

import tinytorch.datasets as datasets
from tinytorch.datasets import load_mnist

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "tinytorch" / "datasets" / "mnist.npz"
NAMES = ("x_train", "y_train", "x_test", "y_test")
# sha256 over each array's name, shape and bytes, in the order of NAMES: the decoded arrays,
# not the file's bytes (which depend on the zlib that compressed them).
ARRAYS_SHA256 = "d071a986b5209b3a9d09c4a689a337fec001d2a4c3e04b65bfabddc03d3497c0"


def arrays_hash(arrays) -> str:
    h = hashlib.sha256()
    for name in NAMES:
        h.update(name.encode())
        h.update(str(arrays[name].shape).encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def raw():
    with np.load(SHIPPED) as archive:
        return {name: archive[name] for name in NAMES}


@pytest.fixture(scope="module")
def build_mnist():
    spec = importlib.util.spec_from_file_location("build_mnist", ROOT / "tools" / "build_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_arrays_hash_and_types(raw):
    assert arrays_hash(raw) == ARRAYS_SHA256
    assert {name: (a.dtype, a.shape) for name, a in raw.items()} == {
        "x_train": (np.uint8, (4000, 28, 28)), "y_train": (np.uint8, (4000,)),
        "x_test": (np.uint8, (1000, 28, 28)), "y_test": (np.uint8, (1000,))}


def test_classes_are_balanced_and_the_split_is_stratified(raw):
    assert np.bincount(raw["y_train"], minlength=10).tolist() == [400] * 10
    assert np.bincount(raw["y_test"], minlength=10).tolist() == [100] * 10
    both = np.concatenate([raw["y_train"], raw["y_test"]])
    assert np.bincount(both).tolist() == [500] * 10
    # No image is in both sets, and the sets are shuffled (not in class order).
    train = {x.tobytes() for x in raw["x_train"]}
    assert not any(x.tobytes() in train for x in raw["x_test"])
    assert len(train) == 4000 and np.any(np.diff(raw["y_train"].astype(int)) < 0)


def test_load_mnist_shapes_dtypes_and_fresh_arrays():
    x_train, y_train, x_test, y_test = load_mnist()
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64 and y_train.shape == (4000,)
    images = load_mnist(flat=False)
    assert images[0].shape == (4000, 1, 28, 28) and images[2].shape == (1000, 1, 28, 28)
    np.testing.assert_array_equal(images[0].reshape(4000, 784), x_train)
    np.testing.assert_array_equal(images[3], y_test)
    x_train[0] = 99.0
    assert load_mnist()[0][0, 0] != 99.0


def test_normalisation_is_one_affine_map_to_mean_0_std_1(raw):
    x_train, _, x_test, _ = load_mnist()
    # The formula, from the raw pixels, in float64: within float32 rounding.
    expected = (raw["x_test"].reshape(1000, 784) / 255.0 - datasets.MNIST_MEAN) / datasets.MNIST_STD
    np.testing.assert_allclose(x_test, expected, rtol=0, atol=2e-6)
    assert abs(float(x_train.astype(np.float64).mean())) < 1e-3
    assert abs(float(x_train.astype(np.float64).std()) - 1.0) < 1e-3


def test_load_mnist_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_mnist tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert load_mnist()[1].shape == (4000,)


def test_load_mnist_refuses_a_non_bool_flat():
    with pytest.raises(TypeError, match="flat must be True or False, got 'yes'"):
        load_mnist(flat="yes")


def test_a_damaged_archive_is_refused_before_use(tmp_path, monkeypatch, raw):
    bad = dict(raw, y_test=raw["y_test"].astype(np.int32))
    np.savez(tmp_path / "mnist.npz", **bad)
    monkeypatch.setattr(datasets, "_MNIST", tmp_path / "mnist.npz")
    with pytest.raises(ValueError, match="y_test is int32 .* expected uint8"):
        load_mnist()
    np.savez(tmp_path / "mnist.npz", **dict(raw, y_train=np.full(4000, 10, np.uint8)))
    with pytest.raises(ValueError, match="y_train holds 10, above its largest value 9"):
        load_mnist()


def _write_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    rows = np.concatenate([images.reshape(len(labels), -1), labels[:, None]], axis=1).astype(int)
    with gzip.open(path, "wt") as f:
        f.writelines(",".join(map(str, row)) + "\n" for row in rows)
    return path


def test_build_script_splits_a_small_csv_stratified_and_deterministic(tmp_path, build_mnist):
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 6)
    images = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    csv = _write_csv(tmp_path / "small.csv.gz", images, labels)
    arrays = build_mnist.build(csv, per_class=6, test_per_class=2)
    assert np.bincount(arrays["y_train"]).tolist() == [4] * 10 and np.bincount(arrays["y_test"]).tolist() == [2] * 10
    # Every image keeps its label; every image lands in exactly one set.
    by_bytes = {x.tobytes(): y for x, y in zip(images, labels)}
    out = [(x, y) for s in ("train", "test") for x, y in zip(arrays[f"x_{s}"], arrays[f"y_{s}"])]
    assert sorted(by_bytes) == sorted(x.tobytes() for x, _ in out)
    assert all(by_bytes[x.tobytes()] == y for x, y in out)
    # The rows' order does not matter, and the archive's bytes are the same every time.
    order = rng.permutation(60)
    again = build_mnist.build(_write_csv(tmp_path / "shuffled.csv.gz", images[order], labels[order]),
                              per_class=6, test_per_class=2)
    assert arrays_hash(again) == arrays_hash(arrays)
    assert build_mnist.npz_bytes(arrays) == build_mnist.npz_bytes(again)


def test_build_script_reproduces_the_shipped_arrays(tmp_path, build_mnist, raw):
    # The csv of the published sample, rebuilt from the shipped arrays in another row order.
    images = np.concatenate([raw["x_test"], raw["x_train"]])
    labels = np.concatenate([raw["y_test"], raw["y_train"]])
    order = np.argsort(labels, kind="stable")
    csv = _write_csv(tmp_path / "mnist_5k.csv.gz", images[order], labels[order])
    out = tmp_path / "mnist.npz"
    assert build_mnist.main([str(csv), "--out", str(out)]) == 0
    with np.load(out) as archive:
        assert arrays_hash({name: archive[name] for name in NAMES}) == ARRAYS_SHA256


@pytest.mark.parametrize("text, message", [
    ("1,2,3\n", "row 1 has 3 values, expected 785"),
    (",".join(["0"] * 784 + ["12"]) + "\n", "labels must be 0..9, got 12"),
    (",".join(["256"] * 785) + "\n", "whole number in 0..255"),
])
def test_build_script_refuses_a_malformed_csv(tmp_path, build_mnist, text, message):
    path = tmp_path / "bad.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(text)
    with pytest.raises(ValueError, match=message):
        build_mnist.build(path, per_class=1, test_per_class=0)
