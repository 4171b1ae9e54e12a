"""Small datasets shipped inside the package, so every example runs offline.

`load_digits` returns the UCI ML hand-written digits (E. Alpaydin and C. Kaynak,
CC BY 4.0): 1,797 grey-scale 8x8 images of the digits 0-9, split once, stratified
and seeded, into 1,437 training and 360 test images. The file `digits.npz` stores
the raw pixel counts (0-16) as uint8; `tools/make_digits.py` rebuilds it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_digits"]

_DIGITS = Path(__file__).with_name("digits.npz")


def load_digits(flat: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits as `(x_train, y_train, x_test, y_test)`, pixels scaled to float32 in [0, 1].

    Args:
        flat: `True` gives images as rows of 64 features, `(N, 64)`, for an MLP;
            `False` gives `(N, 1, 8, 8)` (one channel) for a CNN.

    Returns:
        `x_train (1437, ...)`, `y_train (1437,)`, `x_test (360, ...)`, `y_test (360,)`;
        labels are int64 class indices 0-9. Each call returns fresh arrays.
    """
    if not isinstance(flat, (bool, np.bool_)):
        raise TypeError(f"flat must be True or False, got {flat!r}")
    with np.load(_DIGITS) as archive:
        raw = {name: archive[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    shape = (-1, 64) if flat else (-1, 1, 8, 8)
    # NOTE: the counts run 0..16, so dividing by 16 maps them exactly onto [0, 1].
    x_train = (raw["x_train"].astype(np.float32) / np.float32(16.0)).reshape(shape)
    x_test = (raw["x_test"].astype(np.float32) / np.float32(16.0)).reshape(shape)
    return x_train, raw["y_train"].astype(np.int64), x_test, raw["y_test"].astype(np.int64)
