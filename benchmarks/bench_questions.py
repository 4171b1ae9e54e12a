"""The course page's questions on the digits MLP, measured over seeds: Module 16, section 10, in full.

1. Lottery tickets: the mask of the trained network pruned by magnitude, with survivors
   rewound to initialisation (ticket), to epoch 1 (late), on fresh weights (random), or
   the trained network fine-tuned; 25 epochs each.
2. Distillation against pruning at equal non-zero weights (student 64-16-10): with all
   labels (T=4, alpha=0.9, 40 epochs), and with 100 labels plus the unlabeled images.
3. Per-layer allocation from the sensitivity scan against uniform and global pruning
   at the same overall sparsity; the design target (a file of at most DESIGN_BYTES, at
   most DESIGN_DROP lost on average).
4. Low rank against magnitude and structured pruning at equal weights.

Every row is a mean ± sample standard deviation over the seeds; accuracy in %, files in
bytes (sparse INT8, `save_compressed`), latency in microseconds per batch of 256 (one
BLAS thread, interleaved rounds).

    python benchmarks/bench_questions.py [--seeds 0 1 2] [--only lottery kd design lowrank]
"""
from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def tagged(table: str, rows: list[dict]) -> list[dict]:
    """`rows` with the name of the table they belong to, first."""
    return [{"table": table, **row} for row in rows]


def lottery(seeds) -> list[dict]:
    from tinytorch.compression import experiments as qx

    arms = ["dense", "ticket", "late", "random", "finetuned"]
    summary = qx.summarize(qx.lottery_tickets((0.5, 0.8, 0.9, 0.95, 0.98), seeds, 25), ["sparsity"], arms)
    print(qx.table(summary, ["sparsity"], arms, percent=arms))
    return tagged("lottery tickets: test accuracy", summary)


def kd(seeds) -> list[dict]:
    from tinytorch.compression import experiments as qx

    values, out = ["accuracy", "nonzero", "bytes", "us"], []
    for labels in (None, 100):
        print(f"student 64-16-10, {labels or 'all'} labels")
        rows = qx.distill_vs_prune((64, 16, 10), seeds, 40, labels=labels, timing=labels is None)
        summary = qx.summarize(rows, ["arm"], values)
        print(qx.table(summary, ["arm"], values, percent=["accuracy"]))
        out += tagged(f"distillation, student 64-16-10, {labels or 'all'} labels", summary)
    return out


def design(seeds) -> list[dict]:
    from tinytorch.compression import allocate_sparsity
    from tinytorch.compression import experiments as qx

    rows, _ = qx.allocations_compared(allocate_sparsity, (0.9, 0.93, 0.95, 0.97), seeds)
    print(f"accuracy drop in points; design target at {qx.DESIGN_SPARSITY:.0%}: at most {qx.DESIGN_BYTES:,} bytes, "
          f"at most {100 * qx.DESIGN_DROP:.0f} point(s) on average")
    summary = qx.summarize(rows, ["overall", "rule"], ["drop", "bytes"])
    print(qx.table(summary, ["overall", "rule"], ["drop", "bytes"], percent=["drop"]))
    return tagged("allocation: accuracy drop and bytes", summary)


def lowrank(seeds) -> list[dict]:
    from tinytorch.compression import experiments as qx

    values = ["before", "accuracy", "weights", "bytes", "us"]
    summary = qx.summarize(qx.low_rank_vs_pruning((0.5, 0.25, 0.1), seeds, 10), ["fraction", "arm"], values)
    print(qx.table(summary, ["fraction", "arm"], values, percent=["before", "accuracy"]))
    return tagged("low rank against pruning at equal weights", summary)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the chosen questions over the seeds, print their tables, return their summary rows."""
    parts = {"lottery": lottery, "kd": kd, "design": design, "lowrank": lowrank}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(parts), default=list(parts))
    args = parser.parse_args(argv)
    rows = []
    for name in args.only:
        start = time.perf_counter()
        print(f"\n== {name} ({len(args.seeds)} seeds)")
        rows += parts[name](args.seeds)
        print(f"({time.perf_counter() - start:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
