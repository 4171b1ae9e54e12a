"""The papers' MNIST results beside ours: Deep Compression, the lottery ticket, structured pruning of LeNet-5.

All three train on the bundled MNIST sample (`load_mnist`: 4,000 training and 1,000 test
images; the papers used 60,000 and 10,000), with the papers' networks from
`tinytorch.recipes` (LeNet-300-100, 266,610 parameters; LeNet-5 as Deep Compression counts
it, 431,080). Means and spreads (max - min) are over the seeds; one test image is 0.1 point.

1. Deep Compression (Han et al., ICLR 2016, Table 1), both networks: the dense network
   (its recipe in `tinytorch.recipes`), `IterativePruner` to the sparsity in FULL with
   fine-tuning (Adam, then a few epochs at a tenth of the rate), then
   `prune_and_quantize(..., codebook="kmeans", bits=...)` (each layer's weights share
   2**bits values) with the centroids fine-tuned (`fine_tune_centroids`), and
   `save_compressed`: the file's bytes against the fp32 parameters (4 bytes each, as the
   paper counts) and against `torch.save` of the same dense model's PyTorch twin; the
   accuracy is that of the model read back from the file.
2. The lottery ticket (Frankle & Carbin, ICLR 2019) on LeNet-300-100: 500 of the training
   images are held out for validation. Train, prune 20% of the remaining weights
   (`IterativePruner`, global magnitude, `rewind_to` = the initial state dict), retrain
   from the rewound weights, repeat 15 rounds down to 3.5% of the weights. At each round
   the ticket and the same mask on fresh random weights train alike; each reports the
   iteration of its lowest validation loss (the paper's early-stopping measure) and the
   test accuracy there.
3. Structured pruning of LeNet-5 (the trained network of seed 0): `structured_prune`
   zeros half the filters of each convolution and half of fc 500, `remove_pruned_units`
   builds the smaller network; both run forward in eval mode at batch 64 on one thread,
   timed in interleaved rounds (Module 14's `time_rounds`, CPU clock), beside the FLOP
   ratio (`count_flops`) and PyTorch's speedup on the twins of the same two networks
   (`tinytorch.deploy.to_torch`); `compare_layer_times` gives each layer's share.

Goal (Deep Compression): LeNet-300-100 >= 60x and LeNet-5 >= 50x against fp32, each at most 0.3 points lost.
Goal (lottery): at 7% and 3.5% of the weights the ticket within 0.5 points of dense, above random re-initialisation on every seed by >= 1 point (7%) and >= 2 points (3.5%).
Goal (structured): a larger speedup than PyTorch's on the same two networks.

    python -m benchmarks.bench_papers [--seeds 3] [--out benchmarks/figures] [--quick] [--only dc lottery structured]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread, as every bench
    os.environ.setdefault(_var, "1")

if __package__ in (None, ""):  # run as a script: the project root holds the package `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import papers_report  # noqa: E402  (after the BLAS settings)

HERE = Path(__file__).resolve().parent
# Deep Compression's Table 1: top-1 error (%) before and after, KB before and after, ratio.
PAPER_DC = {"LeNet-300-100": {"error": (1.64, 1.58), "kb": (1070, 27), "ratio": 40},
            "LeNet-5": {"error": (0.80, 0.74), "kb": (1720, 44), "ratio": 39}}
GOAL_DC = {"LeNet-300-100": 60, "LeNet-5": 50}
GOAL_DROP = 0.3  # points
# Changes to the dense recipes; per network, the pruning: sparsity, IterativePruner steps
# and epochs per step, final fine-tuning epochs, shared-weight bits, centroid epochs.
FULL = {
    "dense": {},  # each network's recipe as `tinytorch.recipes` gives it
    "dc": {"LeNet-300-100": {"sparsity": 0.96, "steps": 4, "epochs_per_step": 3, "final": 5, "bits": 4, "centroid": 3},
           "LeNet-5": {"sparsity": 0.95, "steps": 4, "epochs_per_step": 2, "final": 3, "bits": 4, "centroid": 2}},
    "lottery": {"rounds": 15, "epochs": 12, "every": 20},
    "structured": {"repeats": 15},
    "labels": None,  # all 4,000 training images
}
QUICK = {
    "dense": {"epochs": 1, "then": ()},
    "dc": {"LeNet-300-100": {"sparsity": 0.9, "steps": 1, "epochs_per_step": 1, "final": 0, "bits": 4, "centroid": 1},
           "LeNet-5": {"sparsity": 0.9, "steps": 1, "epochs_per_step": 1, "final": 0, "bits": 4, "centroid": 1}},
    "lottery": {"rounds": 2, "epochs": 1, "every": 20},
    "structured": {"repeats": 2},
    "labels": 500,  # LeNet-5 and the pruning train on 500 images only
}
RATE, PRUNE_PER_ROUND, VALIDATION = 1e-3, 0.2, 500


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, max - min) of `values`."""
    return statistics.fmean(values), max(values) - min(values)


def summarise(rows: list[dict], by: list[str], keys: list[str]) -> list[dict]:
    """One row per distinct value of `by`: each of `keys` as its mean over seeds with its spread."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for group in groups.values():
        entry = {k: group[0][k] for k in by} | {"seeds": len(group)}
        for key in keys:
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                entry[key], entry[key + "_spread"] = spread(values)
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- Deep Compression


def _networks():
    from tinytorch.recipes import lenet5, lenet_300_100

    return {"LeNet-300-100": lenet_300_100, "LeNet-5": lenet5}


def torch_save_bytes(model) -> int | None:
    """Bytes of `torch.save` of the PyTorch twin's state dict (None without PyTorch)."""
    try:
        import torch
    except ImportError:
        return None
    from tinytorch.deploy import to_torch

    buffer = io.BytesIO()
    torch.save(to_torch(model).state_dict(), buffer)
    return len(buffer.getvalue())


def train_dense(name: str, seed: int, settings: dict):
    """The dense network `name` of `seed`, trained with its recipe (`tinytorch.recipes`): the `Trained` tuple."""
    from tinytorch.recipes import LENET5_RECIPE, LENET_300_100_RECIPE, reads_images

    recipe = {"LeNet-300-100": LENET_300_100_RECIPE, "LeNet-5": LENET5_RECIPE}[name]
    recipe, model = dataclasses.replace(recipe, seed=seed, **settings["dense"]), _networks()[name](seed)
    train, test = recipe.loaders(flat=not reads_images(model), labels=settings["labels"])
    return recipe.fit(model, train, test)


def deep_compression(name: str, seed: int, trained, settings: dict) -> dict:
    """Prune with fine-tuning, share weights, fine-tune the centroids, save: one row."""
    from tinytorch.compression import IterativePruner, fine_tune, load_compressed, prune_and_quantize, save_compressed
    from tinytorch.compression.sharing import fine_tune_centroids
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate
    from tinytorch.profiling import count_parameters

    s = settings["dc"][name]
    model, loss_fn = copy.deepcopy(trained.model), CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=RATE)
    pruner = IterativePruner(s["sparsity"], steps=s["steps"])
    pruner.run(model, optimizer, loss_fn, trained.train, s["epochs_per_step"])
    if s["final"]:
        optimizer.lr = RATE / 10
        fine_tune(model, optimizer, loss_fn, trained.train, s["final"], masks=pruner.masks, progress=False)
    pruned_accuracy = evaluate(model, trained.test)
    shared = prune_and_quantize(model, sparsity=None, bits=s["bits"], codebook="kmeans", int8_bias=True)
    fine_tune_centroids(shared, loss_fn, trained.train, s["centroid"], lr=1e-4, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        size = save_compressed(shared, Path(folder) / "model.ttz")
        accuracy = evaluate(load_compressed(Path(folder) / "model.ttz"), trained.test)
    params, theirs = count_parameters(trained.model), torch_save_bytes(trained.model)
    return {"network": name, "seed": seed, "sparsity": s["sparsity"], "bits": s["bits"],
            "dense_accuracy": trained.accuracy, "pruned_accuracy": pruned_accuracy, "accuracy": accuracy,
            "drop_points": 100 * (trained.accuracy - accuracy), "bytes": size, "ratio_fp32": 4 * params / size,
            "torch_save_bytes": theirs, "ratio_torch_save": None if theirs is None else theirs / size}


def dc_table(rows: list[dict]) -> list[dict]:
    """The paper's row beside ours for each network."""
    table = []
    for entry in summarise(rows, ["network", "sparsity", "bits"], ["dense_accuracy", "pruned_accuracy", "accuracy",
                                                                   "drop_points", "bytes", "ratio_fp32",
                                                                   "ratio_torch_save"]):
        paper = PAPER_DC[entry["network"]]
        table.append({"table": "Deep Compression: the paper's row beside ours", **entry,
                      "paper_kb_before": paper["kb"][0], "paper_kb_after": paper["kb"][1],
                      "paper_ratio": paper["ratio"], "paper_error_before": paper["error"][0],
                      "paper_error_after": paper["error"][1], "goal_ratio": GOAL_DC[entry["network"]],
                      "goal_met": entry["ratio_fp32"] >= GOAL_DC[entry["network"]]
                      and entry["drop_points"] <= GOAL_DROP + 1e-9})  # NOTE: 0.3 as a float sum
    return table


# ----------------------------------------------------------------------------- the lottery ticket


def lottery_data(seed: int):
    """(make_train, validation, test): a maker of fresh training loaders (the same batches for
    every network of `seed`), 500 held-out training images, and the 1,000 test images."""
    import numpy as np

    from tinytorch.data.loader import DataLoader, TensorDataset
    from tinytorch.datasets import load_mnist

    x, y, x_test, y_test = load_mnist()
    held = np.random.default_rng(seed).permutation(len(y))
    val, train = held[:VALIDATION], held[VALIDATION:]
    def make_train() -> DataLoader:
        return DataLoader(TensorDataset(x[train], y[train]), batch_size=64, shuffle=True, seed=seed)
    return (make_train, DataLoader(TensorDataset(x[val], y[val]), batch_size=VALIDATION),
            DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test)))


def validation_loss(model, loader) -> float:
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.losses import CrossEntropyLoss

    model.eval()
    with no_grad():
        x, y = next(iter(loader))
        value = float(CrossEntropyLoss()(model(x), y).item())
    model.train()
    return value


def train_tracked(model, masks, data, epochs: int, every: int) -> dict:
    """Adam at RATE for `epochs` with `masks` held; every `every` iterations the validation loss.

    Returns the iteration of the lowest validation loss, the test accuracy there (the
    paper's early-stopping measure) and at the end.
    """
    import math

    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate, train_step

    make_train, val, test = data
    optimizer, loss_fn = Adam(model.parameters(), lr=RATE), CrossEntropyLoss()
    handle = masks.attach(optimizer) if masks is not None else None
    best, iteration = (math.inf, 0, None), 0
    model.train()
    try:
        for _ in range(epochs):
            for x, y in make_train():
                train_step(model, optimizer, loss_fn, x, y)
                iteration += 1
                if iteration % every == 0 and (loss := validation_loss(model, val)) < best[0]:
                    best = (loss, iteration, evaluate(model, test))
    finally:
        if handle is not None:
            handle.remove()
    final = evaluate(model, test)
    return {"best_iteration": best[1] or iteration, "accuracy": final if best[2] is None else best[2],
            "final_accuracy": final}


def lottery(seed: int, settings: dict) -> list[dict]:
    """Dense, then per round the ticket (rewound to the initial weights) and the same mask on fresh weights."""
    from tinytorch.compression import IterativePruner, measure_sparsity
    from tinytorch.compression.prune import Masks
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.recipes import lenet_300_100

    s, data = settings["lottery"], lottery_data(seed)
    model = lenet_300_100(seed)
    initial = model.state_dict()
    rows = [{"seed": seed, "round": 0, "weights": 1.0, "arm": "dense",
             **train_tracked(model, None, data, s["epochs"], s["every"])}]
    for r in range(1, s["rounds"] + 1):
        pruner = IterativePruner(1 - (1 - PRUNE_PER_ROUND) ** r, steps=1, rewind_to=initial)
        pruner.run(model, Adam(model.parameters(), lr=RATE), CrossEntropyLoss(), data[0](), 0)  # prune, rewind
        weights = 1 - measure_sparsity(model)
        rows.append({"seed": seed, "round": r, "weights": weights, "arm": "ticket",
                     **train_tracked(model, pruner.masks, data, s["epochs"], s["every"])})
        fresh = lenet_300_100(seed + 1000)
        masks = Masks(fresh, {name: pruner.masks[name] for name in pruner.masks})
        masks.apply()
        rows.append({"seed": seed, "round": r, "weights": weights, "arm": "random",
                     **train_tracked(fresh, masks, data, s["epochs"], s["every"])})
    return rows


def lottery_table(rows: list[dict]) -> list[dict]:
    """Per round: ticket, random and dense (means, spreads), the worst seed's margin, best-validation iterations."""
    keys = ["weights", "accuracy", "final_accuracy", "best_iteration"]
    by_arm = {(e["round"], e["arm"]): e for e in summarise(rows, ["round", "arm"], keys)}
    dense = {r["seed"]: r for r in rows if r["arm"] == "dense"}
    table = []
    for (r, arm), ticket in sorted(by_arm.items()):
        if arm != "ticket":
            continue
        random = by_arm[(r, "random")]
        pairs = {(x["seed"], x["arm"]): x for x in rows if x["round"] == r}
        seeds = sorted({x["seed"] for x in rows if x["round"] == r})
        over_random = [pairs[(k, "ticket")]["accuracy"] - pairs[(k, "random")]["accuracy"] for k in seeds]
        below_dense = [dense[k]["accuracy"] - pairs[(k, "ticket")]["accuracy"] for k in seeds]
        table.append({"table": "Lottery ticket, LeNet-300-100: test accuracy at the best validation loss", "round": r,
                      "weights_percent": 100 * ticket["weights"],
                      "ticket": ticket["accuracy"], "ticket_spread": ticket["accuracy_spread"],
                      "random": random["accuracy"], "random_spread": random["accuracy_spread"],
                      "dense": by_arm[(0, "dense")]["accuracy"], "dense_spread": by_arm[(0, "dense")]["accuracy_spread"],
                      "ticket_minus_dense_points": -100 * statistics.fmean(below_dense),
                      "ticket_over_random_worst_seed_points": 100 * min(over_random),
                      "ticket_best_iteration": ticket["best_iteration"],
                      "random_best_iteration": random["best_iteration"],
                      "dense_best_iteration": by_arm[(0, "dense")]["best_iteration"],
                      "ticket_final": ticket["final_accuracy"], "random_final": random["final_accuracy"]})
    return table


# ----------------------------------------------------------------------------- structured pruning of LeNet-5


def _torch_timings(masked, smaller, x, repeats: int):
    """Module 14's Timings of the PyTorch twins of the two networks (None without PyTorch)."""
    try:
        import torch
    except ImportError:
        return None
    from tinytorch.deploy import to_torch
    from tinytorch.profiling import time_rounds

    torch.set_num_threads(1)
    twins, tx = [to_torch(m).eval() for m in (masked, smaller)], torch.from_numpy(x.data)
    # NOTE: in rounds of their own, after ours, as bench_structured does: PyTorch's calls mixed
    # into our rounds made our ratios swing.
    with torch.inference_mode():
        return time_rounds([lambda: twins[0](tx), lambda: twins[1](tx)], repeats=repeats, clock="cpu", threads=None)


def structured(trained, settings: dict) -> list[dict]:
    """Half of every hidden layer's units removed from the trained LeNet-5: speedups beside the FLOP ratio."""
    import numpy as np

    from tinytorch.acceleration import compare_layer_times
    from tinytorch.compression import fine_tune, structured_prune
    from tinytorch.compression.surgery import remove_pruned_units
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor
    from tinytorch.core.training import evaluate
    from tinytorch.profiling import count_flops, count_parameters, time_rounds

    repeats, masked = settings["structured"]["repeats"], copy.deepcopy(trained.model)
    masks = structured_prune(masked, 0.5)
    before_tuning = evaluate(masked, trained.test)
    fine_tune(masked, Adam(masked.parameters(), lr=RATE), CrossEntropyLoss(), trained.train, 2, masks=masks,
              progress=False)
    smaller = remove_pruned_units(masked, masks)
    masked.eval(), smaller.eval()
    x = Tensor(next(iter(trained.test))[0].data[:64])
    with no_grad():
        err = float(np.abs(masked(x).data - smaller(x).data).max())
        if err > 1e-4:
            raise AssertionError(f"the smaller LeNet-5 differs from the masked one by {err}")
        ours = time_rounds([lambda: masked(x), lambda: smaller(x)], repeats=repeats, clock="cpu")
        layers = compare_layer_times(masked, smaller, x, repeats=repeats, clock="cpu")
    theirs = _torch_timings(masked, smaller, x, repeats)
    shape = (64, 1, 28, 28)
    flop_ratio = count_flops(masked, shape) / count_flops(smaller, shape)
    row = {"table": "Structured pruning of LeNet-5, half the units removed: forward at batch 64, eval, one thread",
           "params": count_parameters(masked), "params_removed": count_parameters(smaller), "flop_ratio": flop_ratio,
           "dense_accuracy": trained.accuracy, "accuracy_before_tuning": before_tuning,
           "accuracy_after_2_epochs": evaluate(smaller, trained.test),
           "masked_ms": 1e3 * ours[0].median, "removed_ms": 1e3 * ours[1].median,
           "speedup": ours[0].median / ours[1].median, "spread": max(ours[0].spread, ours[1].spread),
           "torch_masked_ms": None if theirs is None else 1e3 * theirs[0].median,
           "torch_removed_ms": None if theirs is None else 1e3 * theirs[1].median,
           "torch_speedup": None if theirs is None else theirs[0].median / theirs[1].median}
    row["of_flop_ratio"], row["goal_met"] = row["speedup"] / flop_ratio, row["speedup"] > (row["torch_speedup"] or 0)
    per_layer = [{"table": "Structured pruning of LeNet-5, layer by layer (compare_layer_times)",
                  "layer": f"{t.name} {t.kind}", "masked_us": 1e6 * t.before_seconds, "removed_us": 1e6 * t.after_seconds,
                  "speedup": t.speedup, "flop_ratio": t.flop_ratio,
                  "share_of_removed_time": t.after_seconds / sum(u.after_seconds for u in layers)} for t in layers]
    return [row] + per_layer


# ----------------------------------------------------------------------------- report


def print_tables(rows: list[dict]) -> None:
    """Each table of `rows` in Markdown, as RESULTS.md shows it (spreads as ± half the range over seeds)."""
    from benchmarks.run_all import section_rows

    print(section_rows(rows, None))


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the chosen parts over the seeds, print their tables, write JSON and PNG, return the table rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "figures", help="folder for papers.json and papers.png")
    parser.add_argument("--quick", action="store_true", help="one epoch here and there: a check that it runs")
    parser.add_argument("--only", nargs="+", choices=["dc", "lottery", "structured"],
                        default=["dc", "lottery", "structured"])
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    settings, start, raw, rows = QUICK if args.quick else FULL, time.perf_counter(), [], []
    lenet5_of_seed_0 = None
    for seed in range(args.seeds):
        # Deep Compression trains both networks on every seed; structured pruning needs LeNet-5 of seed 0.
        for name in [n for n in _networks() if "dc" in args.only or (n == "LeNet-5" and seed == 0
                                                                      and "structured" in args.only)]:
            trained = train_dense(name, seed, settings)
            if "dc" in args.only:
                raw.append(deep_compression(name, seed, trained, settings))
            lenet5_of_seed_0 = trained if (name, seed) == ("LeNet-5", 0) else lenet5_of_seed_0
            print(f"{name}, seed {seed}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if "lottery" in args.only:
            raw += lottery(seed, settings)
            print(f"lottery, seed {seed}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    rows += dc_table([r for r in raw if "network" in r]) + lottery_table([r for r in raw if "arm" in r])
    if lenet5_of_seed_0 is not None:
        rows += structured(lenet5_of_seed_0, settings)
    print_tables(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    from tinytorch.core.files import write_atomic

    write_atomic(args.out / "papers.json", (json.dumps({"settings": settings, "raw": raw, "rows": rows}, indent=1,
                                                       default=str) + "\n").encode())
    papers_report.plot(rows, args.out / "papers.png")
    print(f"\nwrote {args.out / 'papers.json'} and {args.out / 'papers.png'} in {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
