"""Saving a large pruned model: bytes on disk and seconds, TinyTorch's file vs torch.save.

Four Linear(2048, 2048) layers (16.8M weights, 67 MB as float32) magnitude-pruned to 90%
(one global threshold), saved five ways:

* `save_compressed` of the pruned float model: every float32 value kept exactly, the
  zeros left out and the survivors' positions gap-coded, then the smaller of zlib and
  LZMA;
* `prune_and_quantize(model, 0.9)` then `save_compressed`: the same survivors as int8
  with one scale per output channel;
* where PyTorch is installed, `torch.save` of the same pruned weights as a dense
  state_dict (what `torch.nn.utils.prune` leaves you after `prune.remove`), with the
  weight matrices as sparse CSR tensors (`Tensor.to_sparse_csr()`), and the dense file
  compressed with xz.

Each row gives the bytes, the median seconds of `--repeats` saves and loads (xz: one
run, it takes most of a minute), and checks that the loaded weights equal the saved
ones (the INT8 file: equal to the quantized weights). Times are wall-clock and include
writing to the disk.

    python benchmarks/bench_save.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import io
import lzma
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

SPARSITY = 0.9


def _median_seconds(fn, repeats: int):
    """(median seconds of `repeats` calls of fn, what the last call returned)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _torch_rows(weights: dict, folder: Path, repeats: int) -> list[dict]:
    try:
        import torch
    except ImportError:
        return []
    import numpy as np

    dense = {name: torch.from_numpy(w) for name, w in weights.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        csr = {name: t.to_sparse_csr() if t.ndim == 2 else t for name, t in dense.items()}
    rows = []
    for label, state, densify in (("torch.save, dense state_dict", dense, lambda t: t),
                                  ("torch.save, CSR weights", csr, lambda t: t.to_dense() if t.layout != torch.strided else t)):
        path = folder / "model.pt"
        save_s, _ = _median_seconds(lambda: torch.save(state, path), repeats)
        load_s, loaded = _median_seconds(lambda: torch.load(path, weights_only=True), repeats)
        same = all(np.array_equal(densify(loaded[n]).numpy(), w) for n, w in weights.items())
        rows.append({"format": label, "bytes": path.stat().st_size, "save_s": save_s, "load_s": load_s,
                     "exact": same})
    buffer = io.BytesIO()
    torch.save(dense, buffer)
    raw = buffer.getvalue()
    # NOTE: one run only: xz takes most of a minute on the 67 MB file
    save_s, packed = _median_seconds(lambda: lzma.compress(raw), 1)
    rows.append({"format": "torch.save dense, then xz (preset 6)", "bytes": len(packed), "save_s": save_s,
                 "load_s": _median_seconds(lambda: lzma.decompress(packed), 1)[0],
                 "exact": lzma.decompress(packed) == raw})
    return rows


def measure(width: int, layers: int, repeats: int) -> list[dict]:
    """One row per format: bytes, median save and load seconds, and whether the weights came back."""
    import numpy as np

    from tinytorch.compression import load_compressed, magnitude_prune, prune_and_quantize, save_compressed
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed
    from tinytorch.quantization import QuantizedLinear

    manual_seed(0)
    model = Sequential(*[Linear(width, width) for _ in range(layers)])
    magnitude_prune(model, SPARSITY)
    weights = {name: p.data for name, p in model.named_parameters()}
    dense_bytes = sum(w.nbytes for w in weights.values())
    small = prune_and_quantize(model, SPARSITY)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "model.ttz"
        save_s, written = _median_seconds(lambda: save_compressed(model, path), repeats)
        load_s, loaded = _median_seconds(lambda: load_compressed(path), repeats)
        back = [p.data for p in loaded.parameters()]  # load_compressed wraps it: other names, same order
        same = len(back) == len(weights) and all(np.array_equal(a, b) for a, b in zip(back, weights.values()))
        rows.append({"format": "TinyTorch save_compressed, float32", "bytes": written, "save_s": save_s,
                     "load_s": load_s, "exact": same})
        save_s, written = _median_seconds(lambda: save_compressed(small, path), repeats)
        load_s, loaded = _median_seconds(lambda: load_compressed(path), repeats)
        ours = [m for m in small.modules() if isinstance(m, QuantizedLinear)]
        back = [m for m in loaded.modules() if isinstance(m, QuantizedLinear)]
        same = len(ours) == len(back) and all(np.array_equal(a.qweight.values, b.qweight.values)
                                               for a, b in zip(ours, back))
        rows.append({"format": "TinyTorch prune_and_quantize + save_compressed, int8", "bytes": written,
                     "save_s": save_s, "load_s": load_s, "exact": same})
        rows += _torch_rows(weights, folder, repeats)
    for row in rows:
        row["weights"] = sum(w.size for n, w in weights.items() if n.endswith("weight"))
        row["x_smaller_than_dense_fp32"] = dense_bytes / row["bytes"]
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{rows[0]['weights']:,} weights pruned to {SPARSITY:.0%}: bytes on disk, median seconds to save and load")
    print(f"{'format':<54} {'bytes':>12} {'x smaller':>9} {'save s':>8} {'load s':>8} {'weights back':>12}")
    for r in rows:
        print(f"{r['format']:<54} {r['bytes']:>12,} {r['x_smaller_than_dense_fp32']:>8.1f}x {r['save_s']:>8.2f} "
              f"{r['load_s']:>8.2f} {'exact' if r['exact'] else 'DIFFERENT':>12}")


def main(argv: list[str] | None = None) -> list[dict]:
    """Save and load in every format, print the table, return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 x Linear(256, 256) and one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="saves and loads per format (default 3)")
    args = parser.parse_args(argv)
    width = 256 if args.quick else 2048
    rows = measure(width, 4, args.repeats or (1 if args.quick else 3))
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
