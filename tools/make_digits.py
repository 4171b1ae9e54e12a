"""Build `tinytorch/datasets/digits.npz` once from scikit-learn's bundled copy of the digits.

The data are the UCI ML hand-written digits (E. Alpaydin and C. Kaynak, CC BY 4.0):
1,797 images of 8x8 pixels, each pixel a count in 0..16. scikit-learn is needed only
to run this script, never to use TinyTorch. The split is stratified and seeded, so
running the script again writes the same arrays.

    python tools/make_digits.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
N_TEST = 360
OUT = Path(__file__).resolve().parent.parent / "tinytorch" / "datasets" / "digits.npz"


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class's share of the test set as close to its share overall."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n_test / len(labels)
    per_class = np.floor(exact).astype(int)
    # Hand the remaining test slots to the classes with the largest rounding loss.
    short = n_test - per_class.sum()
    per_class[np.argsort(-(exact - per_class), kind="stable")[:short]] += 1
    test = []
    for c, k in zip(classes, per_class):
        idx = np.flatnonzero(labels == c)
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    # Shuffle both so a loader without shuffling still sees mixed classes.
    return rng.permutation(train_idx), rng.permutation(test_idx)


def main() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    assert np.array_equal(images, bunch.images), "pixel values are not whole numbers"
    labels = bunch.target.astype(np.uint8)
    train_idx, test_idx = stratified_split(labels, N_TEST, SEED)
    np.savez_compressed(
        OUT,
        x_train=images[train_idx], y_train=labels[train_idx],
        x_test=images[test_idx], y_test=labels[test_idx],
    )
    print(f"wrote {OUT.name}: {len(train_idx)} train / {len(test_idx)} test, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
