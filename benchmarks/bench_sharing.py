"""Bytes on disk against accuracy: pruning + INT8 vs pruning + k-means weight sharing + entropy coding.

Two MLPs learn the bundled digits: the demo's 64-128-64-10 and a LeNet-300-100-shaped
64-300-100-10. For each seed, each network is trained dense (the demo's recipe), then
pruned iteratively to each sparsity with fine-tuning (the demo's recipe again), and the
pruned network is stored five ways, side by side in one run: INT8 (`prune_and_quantize`
as the demo calls it) and shared weights with 2, 3, 4 and 5 bits (`codebook="kmeans"`),
whose centroids are then fine-tuned. Every row is a real file: its bytes (`to_bytes`),
the entropy bound of what it holds, and the test accuracy of the model read back from
those bytes; "head" is what the bound does not count, the file's 23-byte header and its
description of the layers. Means and spreads are over the seeds; a PNG plots bytes against accuracy
with the course page's 40x and 50-100x marked.

    python benchmarks/bench_sharing.py --out sharing-results [--seeds 3] [--quick]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # tiny matrices: one thread
    os.environ.setdefault(_var, "1")

NETWORKS = {"demo MLP 64-128-64-10": (64, 128, 64, 10), "LeNet-300-100 64-300-100-10": (64, 300, 100, 10)}
SPARSITIES = (0.9, 0.95, 0.97, 0.98)
BITS = (2, 3, 4, 5)
RECIPE = {"epochs": 25, "steps": 5, "epochs_per_step": 5, "final_epochs": 10, "centroid_epochs": 10}
QUICK = {"epochs": 3, "steps": 2, "epochs_per_step": 1, "final_epochs": 1, "centroid_epochs": 1}


def _data(seed: int):
    """The digits loaders of Module 09's `tinytorch.recipes` (batches of 64 in `seed`'s order)."""
    from tinytorch.recipes import digits_loaders

    return digits_loaders(seed)


def _file_row(setting: str, model, test, dense_bytes: int) -> dict:
    """Bytes, bound and accuracy of `model` as a file (read back from its own bytes)."""
    import numpy as np

    from tinytorch.compression import compressed_size
    from tinytorch.compression.container import from_bytes, to_bytes
    from tinytorch.compression.description import describe, encode_tree
    from tinytorch.compression.encodings import Payload
    from tinytorch.compression.entropy import varint
    from tinytorch.core.tensor import Tensor
    from tinytorch.core.training import evaluate

    blob = to_bytes(model)
    loaded = from_bytes(blob)
    x = next(iter(test))[0]
    x = x if isinstance(x, Tensor) else Tensor(x)
    exact = bool(np.array_equal(loaded(x).data, model(x).data))
    bound = compressed_size(loaded).entropy_bound
    arrays = Payload()  # the weights' arrays alone: the file without its header and layer description
    description = encode_tree({"model": describe(getattr(model, "model", model), arrays), "arrays": arrays.arrays})
    return {"setting": setting, "bytes": len(blob), "ratio": dense_bytes / len(blob), "bound": bound["total"],
            "over_bound": len(blob) / bound["total"], "over_bound_gaps": len(blob) / bound["total_gaps"],
            "arrays_over_bound": arrays.size / bound["total"],
            "head": 23 + len(varint(len(description))) + len(description),  # header, description length, description
            "accuracy": float(evaluate(loaded, test)), "bit_exact": exact}


def _prune(dense, sparsity: float, train, recipe: dict):
    from tinytorch.compression import IterativePruner, fine_tune
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam

    model = copy.deepcopy(dense)
    optimizer, loss_fn = Adam(model.parameters(), lr=5e-3), CrossEntropyLoss()
    pruner = IterativePruner(sparsity, steps=recipe["steps"])
    pruner.run(model, optimizer, loss_fn, train, recipe["epochs_per_step"])
    fine_tune(model, optimizer, loss_fn, train, recipe["final_epochs"], masks=pruner.masks, progress=False)
    return model


def run_seed(name: str, widths, seed: int, recipe: dict, sparsities, bits_list) -> list[dict]:
    """Every row of one network and one seed."""
    from tinytorch.compression import prune_and_quantize
    from tinytorch.compression.container import to_bytes
    from tinytorch.compression.sharing import fine_tune_centroids
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.training import evaluate
    from tinytorch.recipes import DigitsRecipe, digits_mlp

    train, test = _data(seed)
    dense = DigitsRecipe(epochs=recipe["epochs"], lr=3e-3, seed=seed).fit(digits_mlp(widths, seed), train, test).model
    dense_bytes = len(to_bytes(dense))
    rows = [{"setting": "dense fp32", "sparsity": 0.0, "bits": 32, "bytes": dense_bytes, "ratio": 1.0,
             "accuracy": float(evaluate(dense, test))}]
    for sparsity in sparsities:
        pruned = _prune(dense, sparsity, train, recipe)
        int8 = prune_and_quantize(pruned, sparsity=None, per_channel=False, int8_bias=True)
        rows.append(_file_row("INT8", int8, test, dense_bytes) | {"sparsity": sparsity, "bits": 8})
        for bits in bits_list:
            shared = prune_and_quantize(pruned, sparsity=None, bits=bits, codebook="kmeans", int8_bias=True)
            before = float(evaluate(shared, test))
            fine_tune_centroids(shared, CrossEntropyLoss(), train, recipe["centroid_epochs"], lr=1e-3, progress=False)
            row = _file_row(f"{bits}-bit shared", shared, test, dense_bytes)
            rows.append(row | {"sparsity": sparsity, "bits": bits, "accuracy_before_fine_tuning": before})
    for row in rows:
        row |= {"network": name, "seed": seed, "dense_accuracy": rows[0]["accuracy"]}
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and spread (max - min) over seeds of each network, sparsity and setting."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["network"], row["sparsity"], row["setting"]), []).append(row)
    table = []
    for (network, sparsity, setting), group in groups.items():
        entry = {"network": network, "sparsity": sparsity, "setting": setting, "seeds": len(group)}
        for key in ("bytes", "ratio", "bound", "over_bound", "over_bound_gaps", "arrays_over_bound", "head", "accuracy",
                    "dense_accuracy"):
            values = [r[key] for r in group if key in r]
            if values:
                entry[key] = statistics.fmean(values)
                entry[key + "_spread"] = max(values) - min(values)
        entry["drop_points"] = 100 * (entry["dense_accuracy"] - entry["accuracy"])
        entry["bit_exact"] = all(r.get("bit_exact", True) for r in group)
        table.append(entry)
    return table


def print_table(table: list[dict]) -> None:
    print(f"{'network':<28}{'sparsity':>9}{'setting':>16}{'bytes':>9}{'ratio':>14}{'bound':>8}{'file/bound':>11}"
          f"{'(gaps)':>7}{'arrays':>7}{'head':>6}{'accuracy':>16}{'drop':>7}")
    for e in table:
        bound = (f"{e['bound']:>8,.0f}{e['over_bound']:>11.3f}{e['over_bound_gaps']:>7.3f}"
                 f"{e['arrays_over_bound']:>7.3f}{e['head']:>6.0f}" if "bound" in e else f"{'':>8}{'':>11}{'':>7}{'':>7}{'':>6}")
        print(f"{e['network']:<28}{e['sparsity']:>9.0%}{e['setting']:>16}{e['bytes']:>9,.0f}"
              f"{e['ratio']:>8.1f}x ±{e['ratio_spread'] / 2:>4.1f}{bound}"
              f"{100 * e['accuracy']:>9.1f}% ±{100 * e['accuracy_spread'] / 2:>4.1f}{e['drop_points']:>7.1f}")


def plot(table: list[dict], path: Path) -> None:
    """File bytes against accuracy, one panel per network; 40x and 50-100x marked."""
    from matplotlib.figure import Figure

    from tinytorch.compression.lab import mark_page_ratios
    from tinytorch.core.files import write_figure

    fig = Figure(figsize=(12, 4.8), dpi=110)
    for i, network in enumerate(NETWORKS):
        entries = [e for e in table if e["network"] == network]
        if not entries:
            continue
        ax = fig.add_subplot(1, 2, i + 1)
        dense = next(e for e in entries if e["setting"] == "dense fp32")
        for setting, marker in (("INT8", "s"), *((f"{b}-bit shared", m) for b, m in zip(BITS, "o^vD"))):
            points = sorted((e["bytes"], 100 * e["accuracy"]) for e in entries if e["setting"] == setting)
            if points:
                ax.plot(*zip(*points), marker + "-", label=setting)
        mark_page_ratios(ax, dense["bytes"], dense["accuracy"])  # the lesson's marks: 40x, 50-100x, dense
        ax.axhline(100 * dense["accuracy"] - 1, color="black", linewidth=0.8, linestyle="--", label="dense - 1 point")
        ax.set_xscale("log")
        ax.set_title(f"{network} (dense file {dense['bytes']:,.0f} B)", fontsize=10)
        ax.set_xlabel("file bytes (save_compressed), log scale; points: 90/95/97/98% pruned")
        ax.set_ylabel("test accuracy (%), mean over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for sharing.json and sharing.png (created)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--quick", action="store_true", help="a few epochs, one sparsity: a smoke test")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    recipe, sparsities = (QUICK, SPARSITIES[:1]) if args.quick else (RECIPE, SPARSITIES)
    start, rows = time.perf_counter(), []
    for name, widths in NETWORKS.items():
        for seed in range(args.seeds):
            rows += run_seed(name, widths, seed, recipe, sparsities, BITS)
            print(f"{name}, seed {seed}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    table = summarise(rows)
    print_table(table)
    from tinytorch.core.files import write_atomic

    report = {"recipe": recipe, "rows": rows, "table": table}
    write_atomic(out / "sharing.json", (json.dumps(report, indent=1) + "\n").encode())
    plot(table, out / "sharing.png")
    print(f"wrote {out / 'sharing.json'} and {out / 'sharing.png'} in {time.perf_counter() - start:.0f} s")
    return table


if __name__ == "__main__":
    main()
