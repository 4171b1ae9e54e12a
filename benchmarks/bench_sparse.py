"""Unstructured sparsity and speed: one Linear layer, dense matmul vs CSR, across sparsity.

A 2048x2048 Linear (default) is magnitude-pruned to each sparsity and run forward at
batch 1 and batch 64: as a dense TinyTorch `Linear` (the zeros are still multiplied),
as a `SparseLinear` with scipy's CSR kernels and with the NumPy formulation
(gather + `np.add.reduceat`), and, where PyTorch is installed, as
`torch.nn.functional.linear` on the same pruned weights (PyTorch's pruning leaves the
weights dense, so its time does not move with sparsity). TinyTorch's forms of one row
are timed in interleaved rounds (Module 14's `time_rounds`, one BLAS thread), PyTorch's in rounds of its own;
the table reports medians and the ratios between them. The crossover is the sparsity
from which CSR stays faster (`crossover_sparsity`, interpolated between the measured
points).

Everything runs on one thread, and by default the clock is the CPU time of this
process (`--clock cpu`): on one thread that is the latency an idle machine shows,
while elapsed time (`--clock wall`) on a shared machine also counts the time other
programs hold the CPU, which swamps calls of a millisecond or less.

    python benchmarks/bench_sparse.py [--size 2048] [--repeats 11] [--threads 1] [--clock cpu|wall] [--quick]

Goal: at 95% sparsity and batch 1, CSR at least 2x faster than dense.
"""
from __future__ import annotations

import argparse
import os

# NOTE: BLAS reads its thread count when NumPy is first imported. One thread keeps a
# shared machine's load out of the dense times (a waiting BLAS thread pool can cost far
# more than the matmul), and scipy's CSR kernels are single-threaded anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

FULL = dict(size=2048, sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99), batches=(1, 64), repeats=11)
QUICK = dict(size=512, sparsities=(0.5, 0.9, 0.95, 0.99), batches=(1, 64), repeats=3)
GOAL_SPARSITY, GOAL_SPEEDUP = 0.95, 2.0


def _torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def measure(size: int, sparsities, batches, repeats: int, threads: int = 1, clock: str = "cpu") -> list[dict]:
    """One row per (batch, sparsity): medians in ms of each form, and CSR's speedup over dense."""
    import numpy as np

    from tinytorch.compression import magnitude_prune
    from tinytorch.acceleration import SparseLinear, default_backend
    from tinytorch.profiling import compare_timings, time_rounds
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    torch = _torch(threads)
    manual_seed(0)
    layer = Linear(size, size)
    weights = layer.weight.data.copy()
    rng = np.random.default_rng(0)
    backends = ["scipy", "numpy"] if default_backend() == "scipy" else ["numpy"]
    rows = []
    for sparsity in sparsities:
        np.copyto(layer.weight.data, weights)
        magnitude_prune(Sequential(layer), sparsity)
        sparse = {b: SparseLinear.from_linear(layer, b) for b in backends}
        for batch in batches:
            x = Tensor(rng.standard_normal((batch, size)).astype(np.float32))
            fns = [lambda: layer(x)] + [lambda s=s: s(x) for s in sparse.values()]
            with no_grad():
                reference = layer(x).data
                for b, s in sparse.items():
                    err = float(np.abs(s(x).data - reference).max())
                    if err > 1e-3:
                        raise AssertionError(f"CSR ({b}) differs from dense by {err} at sparsity {sparsity}")
                timings = time_rounds(fns, repeats=repeats, clock=clock)
                if torch is not None:  # in rounds of its own: mixed in, it unsettles our ratios
                    tw, tb, tx = (torch.from_numpy(a) for a in (layer.weight.data, layer.bias.data, x.data))
                    with torch.inference_mode():
                        timings += time_rounds([lambda: torch.nn.functional.linear(tx, tw, tb)],
                                               repeats=repeats, clock=clock, threads=None)
            times = [t.median for t in timings]
            row = {"batch": batch, "sparsity": sparsity, "clock": clock, "dense_ms": 1e3 * times[0],
                   "dense_spread": timings[0].spread}
            # less work of either kind (FLOPs: size^2 / nnz; bytes: fewer) cannot explain more than its ratio
            work = layer.weight.data.size / max(int(np.count_nonzero(layer.weight.data)), 1)
            for b, t in zip(backends, timings[1:]):
                row[f"csr_{b}_ms"] = 1e3 * t.median
                row[f"csr_{b}_spread"] = t.spread
                row[f"flags_{b}"] = list(compare_timings(timings[0], t, work_ratio=work).flags)
            row["torch_dense_ms"] = 1e3 * times[-1] if torch is not None else None
            for b in backends:
                row[f"speedup_{b}"] = row["dense_ms"] / row[f"csr_{b}_ms"]
            rows.append(row)
    return rows


def _backends(rows: list[dict]) -> list[str]:
    return [k[len("speedup_"):] for k in rows[0] if k.startswith("speedup_")]


def add_crossovers(rows: list[dict]) -> None:
    """Give every row the crossover sparsity of its batch size, per backend."""
    from tinytorch.acceleration import crossover_sparsity

    backends = _backends(rows)
    for batch in sorted({r["batch"] for r in rows}):
        mine = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["sparsity"])
        for b in backends:
            cross = crossover_sparsity([r["sparsity"] for r in mine], [r["dense_ms"] for r in mine],
                                       [r[f"csr_{b}_ms"] for r in mine])
            for r in mine:
                r[f"crossover_{b}"] = cross


def print_table(rows: list[dict], size: int) -> None:
    backends = _backends(rows)
    head = f"{'batch':>5} {'sparsity':>8} {'dense ms':>10}" + "".join(
        f" {'CSR ' + b + ' ms':>14} {'x faster':>8}" for b in backends) + f" {'spread':>6} {'torch dense ms':>15}"
    print(f"Linear({size}, {size}) forward: dense matmul vs CSR (medians of interleaved rounds, one BLAS thread; "
          "spread = range of rounds / median, the largest of the row)")
    print(head)
    for r in rows:
        torch_ms = "n/a" if r["torch_dense_ms"] is None else f"{r['torch_dense_ms']:.3f}"
        spread = max([r["dense_spread"]] + [r[f"csr_{b}_spread"] for b in backends])
        print(f"{r['batch']:>5} {r['sparsity']:>8.0%} {r['dense_ms']:>10.3f}" + "".join(
            f" {r[f'csr_{b}_ms']:>14.3f} {r[f'speedup_{b}']:>7.2f}x{'!' if r[f'flags_{b}'] else ' '}"
            for b in backends) + f" {spread:>6.0%} {torch_ms:>15}")
    for r in rows:
        for b in backends:
            for flag in r[f"flags_{b}"]:
                print(f"  [!] batch {r['batch']}, {r['sparsity']:.0%}, CSR {b}: {flag}")
    for batch in sorted({r["batch"] for r in rows}):
        first = next(r for r in rows if r["batch"] == batch)
        text = ", ".join(f"{b}: " + ("never in this range" if first[f"crossover_{b}"] is None
                                     else f"{first[f'crossover_{b}']:.1%}") for b in backends)
        print(f"batch {batch}: CSR is faster from sparsity {text}")
    goal = [r for r in rows if r["batch"] == 1 and abs(r["sparsity"] - GOAL_SPARSITY) < 1e-9]
    if goal:
        best = max(goal[0][f"speedup_{b}"] for b in backends)
        verdict = "met" if best >= GOAL_SPEEDUP else "NOT met"
        print(f"goal: CSR >= {GOAL_SPEEDUP:.0f}x faster at {GOAL_SPARSITY:.0%}, batch 1: {best:.1f}x ({verdict})")


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the sweep, print the table, return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 512x512 layer, fewer points and repeats")
    parser.add_argument("--size", type=int, default=None, help="in = out features (default 2048)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per row (default 11)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (NumPy's: OPENBLAS_NUM_THREADS)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: CPU seconds of this process (default with one thread); wall: elapsed time")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the CPU time of all threads: use it with --threads 1")
    settings = dict(QUICK if args.quick else FULL)
    settings["size"] = args.size or settings["size"]
    settings["repeats"] = args.repeats or settings["repeats"]
    rows = measure(**settings, threads=args.threads, clock=clock)
    add_crossovers(rows)
    print_table(rows, settings["size"])
    return rows


if __name__ == "__main__":
    main()
