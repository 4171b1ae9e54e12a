"""Module 08: TensorDataset, DataLoader, and the bundled digits (`tinytorch.datasets`)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.data import DataLoader, TensorDataset, to_batch
from tinytorch.datasets import load_digits


@pytest.mark.task("08.1")
def test_tensor_dataset_indexes_every_array(rng):
    x, y, w = rng.standard_normal((7, 3)), np.arange(7), rng.random(7)
    ds = TensorDataset(x, y, w)
    assert len(ds) == 7
    xi, yi, wi = ds[5]
    np.testing.assert_array_equal(xi, x[5])
    assert yi == 5 and wi == w[5]
    batch = ds[np.array([4, 1])]
    np.testing.assert_array_equal(batch[0], x[[4, 1]])
    np.testing.assert_array_equal(batch[1], [4, 1])


@pytest.mark.task("08.1")
def test_tensor_dataset_accepts_tensors():
    ds = TensorDataset(Tensor(np.ones((4, 2))), np.zeros(4, dtype=np.int64))
    assert isinstance(ds.arrays[0], np.ndarray) and len(ds) == 4


@pytest.mark.task("08.1")
def test_tensor_dataset_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"same length.*\(6, 2\).*\(5,\)"):
        TensorDataset(np.zeros((6, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="first"):
        TensorDataset(np.float32(3.0))


@pytest.mark.task("08.2")
@given(n=st.integers(0, 40), batch_size=st.integers(1, 50), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**31))
def test_one_epoch_serves_each_example_once(n, batch_size, shuffle, drop_last, seed):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n)
    loader = DataLoader(TensorDataset(x, y), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader)
    sizes = [len(b[1]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
    else:
        assert sum(sizes) == n and (not sizes or 1 <= sizes[-1] <= batch_size)
    seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], dtype=np.int64)
    assert len(set(seen.tolist())) == len(seen), "no example twice in an epoch"
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.data[:, 0], yb)  # features stay with their labels


@pytest.mark.task("08.2")
def test_shuffle_is_seeded_and_differs_between_epochs():
    ds = TensorDataset(np.zeros((50, 1), np.float32), np.arange(50))

    def orders(loader, epochs=3):
        return [np.concatenate([yb for _, yb in loader]) for _ in range(epochs)]

    a, b = orders(DataLoader(ds, 8, shuffle=True, seed=7)), orders(DataLoader(ds, 8, shuffle=True, seed=7))
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1]), "each epoch draws a new order"
    assert not np.array_equal(a[0], np.arange(50))
    c = orders(DataLoader(ds, 8, shuffle=True, seed=8), 1)[0]
    assert not np.array_equal(a[0], c)


@pytest.mark.task("08.2")
def test_unseeded_shuffle_follows_manual_seed():
    ds = TensorDataset(np.zeros((30, 1), np.float32), np.arange(30))
    manual_seed(5)
    first = np.concatenate([yb for _, yb in DataLoader(ds, 4, shuffle=True)])
    manual_seed(5)
    again = np.concatenate([yb for _, yb in DataLoader(ds, 4, shuffle=True)])
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_is_a_clear_error(seed):
    ds = TensorDataset(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"seed must be None or an int >= 0, got " + repr(seed).replace(".", r"\.")):
        DataLoader(ds, batch_size=2, shuffle=True, seed=seed)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        (True, TypeError), ("8", TypeError)])
def test_bad_batch_size_is_a_clear_error(bad, error):
    ds = TensorDataset(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(error, match=r"batch_size must be an int >= 1, got " + repr(bad).replace(".", r"\.")):
        DataLoader(ds, batch_size=bad)


@pytest.mark.task("08.2")
def test_batches_are_tensors_and_int64_labels():
    ds = TensorDataset(np.ones((5, 2), np.float64), np.arange(5, dtype=np.int32), np.array([1, 0, 1, 1, 0], bool))
    xb, yb, mb = next(iter(DataLoader(ds, 5)))
    assert isinstance(xb, Tensor) and xb.data.dtype == np.float32 and not xb.requires_grad
    assert isinstance(yb, np.ndarray) and yb.dtype == np.int64
    assert mb.dtype == np.int64
    with pytest.raises(TypeError, match="numeric"):
        to_batch((np.array(["a", "b"]),))


@pytest.mark.task("08.2")
def test_any_dataset_with_len_and_getitem_works():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], np.float32), i

    batches = list(DataLoader(Squares(), batch_size=2))
    assert [len(b[1]) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[1][0].data, [[2, 4], [3, 9]])
    assert batches[1][1].dtype == np.int64
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object(), batch_size=2)


# --- the bundled digits (hand-written package code, no student task) -------------------

def test_digits_split_shapes_types_and_range():
    x_train, y_train, x_test, y_test = load_digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0 and x_test.max() <= 1.0
    # Pixels were counts 0..16: every value is a multiple of 1/16.
    np.testing.assert_array_equal(x_train * 16, np.round(x_train * 16))


def test_digits_split_is_stratified_fixed_and_image_shaped():
    x_train, y_train, x_test, y_test = load_digits()
    train_counts, test_counts = np.bincount(y_train, minlength=10), np.bincount(y_test, minlength=10)
    total = train_counts + test_counts
    # Each class's share of the test set within one example of its share overall.
    assert np.all(np.abs(test_counts - total * 360 / 1797) < 1.0), test_counts
    xi_train, yi_train, xi_test, yi_test = load_digits(flat=False)
    assert xi_train.shape == (1437, 1, 8, 8) and xi_test.shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(xi_train.reshape(1437, 64), x_train)
    np.testing.assert_array_equal(yi_test, y_test)
    x_train[0, 0] = 99.0  # each call returns fresh arrays
    assert load_digits()[0][0, 0] != 99.0
    with pytest.raises(TypeError, match="flat"):
        load_digits(flat="no")


def test_digits_are_the_uci_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_digits()
    x_train, y_train, x_test, y_test = load_digits()
    ours = np.concatenate([x_train, x_test]) * 16
    labels = np.concatenate([y_train, y_test])
    # Same multiset of (image, label) rows, in a different order.
    key = lambda x, y: sorted(map(tuple, np.column_stack([x, y]).astype(int).tolist()))  # noqa: E731
    assert key(ours, labels) == key(ref.data, ref.target)
