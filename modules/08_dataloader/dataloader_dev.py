# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 08: DataLoader
#
# > Datasets and mini-batches: the `TensorDataset` and the shuffling, seeded `DataLoader` that feed the training loop.
#
# A network never sees the whole training set at once. Each optimizer step looks at a
# *mini-batch* of, say, 64 examples: enough for a useful gradient estimate, small enough
# to be fast, and noisy in a way that helps generalisation. Shuffling the order every
# epoch keeps consecutive batches from always containing the same examples.
#
# Two small abstractions, borrowed from PyTorch, separate *what* the data is from *how*
# it is served:
#
# * a **dataset** knows its length and returns example `i` (`len(ds)`, `ds[i]`);
# * a **loader** decides the order, cuts it into batches, and turns each batch into the
#   types the model wants: features as `Tensor`, class labels as an int64 array.
#
# The dataset used throughout the course ships with the package:
# `tinytorch.datasets.load_digits()` returns the UCI ML hand-written digits (E. Alpaydin
# and C. Kaynak, CC BY 4.0): 1,797 grey-scale 8x8 images, split once, stratified and
# seeded, into 1,437 training and 360 test images.

# %%
#| default_exp data.loader

# %%
#| export
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from tinytorch.core.checks import check_int
from tinytorch.core.tensor import Tensor, get_rng

# %% [markdown]
# ## TensorDataset
#
# The simplest dataset wraps arrays that share their first axis: features `x (N, ...)`
# and labels `y (N,)`. Example `i` is the tuple `(x[i], y[i])`. Because the arrays are
# NumPy arrays, `ds[indices]` with an array of indices returns a whole batch in one
# fancy-indexing step; the loader uses that instead of stacking examples one by one.
#
# Mismatched lengths are a classic silent bug (features shuffled, labels not; a
# truncated file), so the constructor checks them and names every shape.

# %% nbgrader={"grade": false, "grade_id": "tensor-dataset", "solution": true}
#| export
class TensorDataset:
    """Arrays sharing their first axis, served as tuples: `ds[i] == (a[i], b[i], ...)`."""

    def __init__(self, *arrays: np.ndarray | Tensor) -> None:
        """Task 08.1: keep the arrays (a Tensor's `.data`), check they share their length.

        Raises:
            ValueError: no arrays, a 0-d array, or arrays of different lengths.
        """
        ### BEGIN SOLUTION
        if not arrays:
            raise ValueError("TensorDataset needs at least one array, got none")
        self.arrays = tuple(np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays)
        shapes = [a.shape for a in self.arrays]
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"TensorDataset arrays need a first (example) axis, got shapes {shapes}")
        if len({s[0] for s in shapes}) != 1:
            raise ValueError(f"TensorDataset arrays must have the same length (first axis), got shapes {shapes}")
        ### END SOLUTION

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int | np.ndarray) -> tuple[np.ndarray, ...]:
        """Example `index` (or, for an index array, a batch) from every array."""
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        return f"TensorDataset({', '.join(str(a.shape) for a in self.arrays)})"


# %% nbgrader={"grade": true, "grade_id": "test-tensor-dataset", "locked": true, "points": 2}
def test_unit_tensor_dataset():
    """Task 08.1"""
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, [8.0, 9.0])
    assert yi == 4
    try:
        TensorDataset(x, np.arange(5))
    except ValueError as err:
        assert "(6, 2)" in str(err) and "(5,)" in str(err), err
    else:
        raise AssertionError("arrays of different lengths must raise ValueError")


# %% [markdown]
# ## Turning a batch into model inputs
#
# Features become a `Tensor` (float32, no gradient: data are not parameters). Class
# labels stay a plain int64 array: `CrossEntropyLoss` uses them as indices, and nobody
# differentiates with respect to a label. The rule is by dtype: floating arrays become
# Tensors, integer (and boolean) arrays become int64 arrays.

# %%
#| export
def to_batch(arrays: tuple[np.ndarray, ...]) -> tuple[Tensor | np.ndarray, ...]:
    """Floating arrays as `Tensor`, integer and boolean arrays as int64 ndarrays."""
    out = []
    for a in arrays:
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            out.append(Tensor(a))
        elif np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            out.append(a.astype(np.int64, copy=False))
        else:
            raise TypeError(f"a batch array must be numeric, got dtype {a.dtype} with shape {a.shape}")
    return tuple(out)


# %% [markdown]
# ## The DataLoader
#
# One pass over the loader is one **epoch**. It:
#
# 1. takes the indices `0..N-1`, in order or (with `shuffle=True`) in a fresh random
#    permutation for every epoch;
# 2. cuts them into consecutive chunks of `batch_size`; the last chunk may be smaller,
#    unless `drop_last=True` drops it (`len(loader)` counts the batches either way);
# 3. gathers each chunk from the dataset and converts it with `to_batch`.
#
# Reproducibility: `seed=` makes the sequence of permutations the same on every run;
# without a seed the loader draws its seed from TinyTorch's generator, so
# `manual_seed` makes a whole training run repeatable.
#
# Any object with `__len__` and `__getitem__` returning a tuple works as a dataset;
# for those the loader stacks the examples of a batch itself.

# %% nbgrader={"grade": false, "grade_id": "dataloader", "solution": true}
#| export
class DataLoader:
    """Mini-batches of a dataset, optionally shuffled every epoch, as tuples of Tensors / int64 arrays."""

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False) -> None:
        """Check the arguments and set up the generator that shuffles.

        Args:
            dataset: a `TensorDataset`, or any object with `__len__` and `__getitem__`.
            batch_size: examples per batch, a positive int.
            shuffle: a new random order every epoch.
            seed: seeds the shuffling; `None` draws a seed from TinyTorch's generator.
            drop_last: drop the last batch when it is smaller than `batch_size`.

        Raises:
            ValueError / TypeError: `batch_size` is not a positive int, `seed` is neither
                None nor an int >= 0, or the dataset has no length.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"dataset must have __len__ and __getitem__, got {type(dataset).__name__}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        seed = check_int("seed", seed, 0, allow_none=True)
        if seed is None:
            seed = int(get_rng().integers(2**63)) if self.shuffle else 0
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _gather(self, idx: np.ndarray) -> tuple:
        if isinstance(self.dataset, TensorDataset):
            return self.dataset[idx]
        items = [self.dataset[int(i)] for i in idx]
        items = [it if isinstance(it, tuple) else (it,) for it in items]
        return tuple(np.stack([np.asarray(getattr(v, "data", v)) for v in field]) for field in zip(*items))

    def __iter__(self) -> Iterator[tuple[Tensor | np.ndarray, ...]]:
        """Task 08.2: yield `to_batch(...)` of each chunk of the (shuffled) index order."""
        ### BEGIN SOLUTION
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            yield to_batch(self._gather(order[b * self.batch_size:(b + 1) * self.batch_size]))
        ### END SOLUTION

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} examples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


# %% nbgrader={"grade": true, "grade_id": "test-dataloader", "locked": true, "points": 3}
def test_unit_dataloader():
    """Task 08.2"""
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], Tensor) and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(batches[2][0].data, x[8:])
    shuffled = DataLoader(TensorDataset(x, y), batch_size=3, shuffle=True, seed=1, drop_last=True)
    labels = np.concatenate([b[1] for b in shuffled])
    assert len(shuffled) == 3 and len(labels) == 9 and len(set(labels)) == 9
    assert not np.array_equal(labels, np.arange(9)), "shuffle=True must change the order"
    for xb, yb in shuffled:
        np.testing.assert_array_equal(xb.data[:, 0], 2.0 * yb)  # pairs stay together
    try:
        DataLoader(TensorDataset(x, y), batch_size=0)
    except ValueError as err:
        assert "batch_size" in str(err) and "0" in str(err)
    else:
        raise AssertionError("batch_size=0 must raise ValueError")


# %% [markdown]
# ## The digits, batched
#
# The course's dataset, ready for an MLP (`flat=True`, rows of 64 pixels) or a CNN
# (`flat=False`, images `(N, 1, 8, 8)`). Pixels are scaled from 0..16 to [0, 1].

# %%
def demo_digits():
    from tinytorch.datasets import load_digits

    x_train, y_train, x_test, y_test = load_digits(flat=False)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=0)
    xb, yb = next(iter(loader))
    print(f"{len(x_train)} train / {len(x_test)} test images; {len(loader)} batches per epoch;"
          f" first batch {xb.shape}, labels {yb[:8]}")
    return loader


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_tensor_dataset()
    test_unit_dataloader()
    assert len(demo_digits()) == 23


# %%
if __name__ == "__main__":
    test_module()
    print("Module 08: all inline tests passed")
