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

Each row gives the bytes, the median seconds and the spread of `--repeats` saves and
loads, timed in turns by Module 14's `time_rounds`, each save writing a new file (the old
one is deleted off the clock; xz: one round, it takes most of a minute), and checks that the loaded weights equal the saved
ones (the INT8 file: equal to the quantized weights). Times are wall-clock and include
writing to the disk.

    python benchmarks/bench_save.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import io
import lzma
import os
import tempfile
import warnings
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

SPARSITY = 0.9


def save_and_load(save, load, repeats: int, fresh=None) -> dict:
    """Seconds to save and to load (Module 14's `time_rounds`: the two in turns, `repeats` rounds, the save first).

    `save()` writes and returns what it wrote; `load(saved)` reads it back. `fresh`, when
    given, runs before every save off the clock (e.g. deletes the file, so each save
    writes a new one). Returns the medians, the spreads and what the last calls returned.
    """
    from tinytorch.profiling import time_rounds

    last: dict = {}

    def timed_save(_) -> None:
        last["saved"] = save()

    def timed_load() -> None:
        last["loaded"] = load(last["saved"])

    saving, loading = time_rounds([timed_save, timed_load], repeats=repeats, warmup=0, number=1,
                                  setup=[fresh or (lambda: None), None])
    return {"save_s": saving.median, "load_s": loading.median, "save_spread": saving.spread,
            "load_spread": loading.spread, **last}


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
        t = save_and_load(lambda: torch.save(state, path), lambda _: torch.load(path, weights_only=True), repeats,
                          fresh=lambda: path.unlink(missing_ok=True))
        loaded, _ = t.pop("loaded"), t.pop("saved")
        same = all(np.array_equal(densify(loaded[n]).numpy(), w) for n, w in weights.items())
        rows.append({"format": label, "bytes": path.stat().st_size, **t, "exact": same})
    buffer = io.BytesIO()
    torch.save(dense, buffer)
    raw = buffer.getvalue()
    # NOTE: one round only: xz takes most of a minute on the 67 MB file
    t = save_and_load(lambda: lzma.compress(raw), lzma.decompress, 1)
    packed, same = t.pop("saved"), t.pop("loaded") == raw
    rows.append({"format": "torch.save dense, then xz (preset 6)", "bytes": len(packed), **t, "exact": same})
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
        fresh = lambda: path.unlink(missing_ok=True)  # noqa: E731
        t = save_and_load(lambda: save_compressed(model, path), lambda _: load_compressed(path), repeats, fresh)
        back = [p.data for p in t.pop("loaded").parameters()]  # load_compressed wraps it: other names, same order
        same = len(back) == len(weights) and all(np.array_equal(a, b) for a, b in zip(back, weights.values()))
        rows.append({"format": "TinyTorch save_compressed, float32", "bytes": t.pop("saved"), **t, "exact": same})
        t = save_and_load(lambda: save_compressed(small, path), lambda _: load_compressed(path), repeats, fresh)
        ours = [m for m in small.modules() if isinstance(m, QuantizedLinear)]
        back = [m for m in t.pop("loaded").modules() if isinstance(m, QuantizedLinear)]
        same = len(ours) == len(back) and all(np.array_equal(a.qweight.values, b.qweight.values)
                                               for a, b in zip(ours, back))
        rows.append({"format": "TinyTorch prune_and_quantize + save_compressed, int8", "bytes": t.pop("saved"),
                     **t, "exact": same})
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
