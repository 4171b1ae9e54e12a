"""Train the course's MLP and small CNN on the bundled digits; report test accuracy and time.

The recipes (the figures in the module pages and the compression demo start from these):

MLP   Linear(64, 128), ReLU, Linear(128, 64), ReLU, Linear(64, 10)
      SGD(lr=0.05, momentum=0.9, weight_decay=5e-4), 60 epochs, then lr 0.005 for 20 more
CNN   Conv2d(1, 8, 3, padding=1), ReLU, MaxPool2d(2),
      Conv2d(8, 16, 3, padding=1), ReLU, MaxPool2d(2), Flatten, Linear(64, 10)
      Adam(lr=3e-3), 50 epochs, then lr 3e-4 for 10 more

Both: batch 32, shuffled by `DataLoader(..., shuffle=True, seed=seed)`, weights drawn after
`manual_seed(seed)`, cross-entropy loss; the MLP sees flat rows (N, 64), the CNN images
(N, 1, 8, 8), pixels in [0, 1]. Accuracy is measured once, after training, on the 360
test images. The time is the wall-clock time of the training epochs alone (Module 07's `fit`
history). The networks and recipes are Module 09's (`tinytorch.recipes`).

    python benchmarks/bench_digits_train.py [--seeds 0 1 2] [--threads 1] [--model mlp|cnn|both]
"""
from __future__ import annotations

import argparse


def build(kind: str, seed: int):
    """The network for `kind` ("mlp" or "cnn"), Module 09's builder, drawn with `seed`."""
    from tinytorch.recipes import digits_cnn, digits_mlp

    return digits_mlp(seed=seed) if kind == "mlp" else digits_cnn(seed=seed)


# Each network's settings for Module 09's `DigitsRecipe`, and its (learning rate, epochs) phases.
RECIPES = {"mlp": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 60,
                   "then": ((0.005, 20),), "batch_size": 32},
           "cnn": {"lr": 3e-3, "epochs": 50, "then": ((3e-4, 10),), "batch_size": 32}}
PHASES = {kind: [(r["lr"], r["epochs"]), *r["then"]] for kind, r in RECIPES.items()}


def train(kind: str, seed: int) -> tuple[float, float]:
    """Train one network with the recipe; returns (test accuracy, training seconds: the epochs alone)."""
    from tinytorch.recipes import DigitsRecipe

    result = DigitsRecipe(**RECIPES[kind], seed=seed).fit(build(kind, seed), progress=None)
    return result.accuracy, sum(row["seconds"] for row in result.history)


def main(argv: list[str] | None = None) -> list[dict]:
    """Train each network with each seed, print accuracy and time, return one row per network and seed."""
    from tinytorch.profiling import blas_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    args = parser.parse_args(argv)
    rows = []
    for kind in ["mlp", "cnn"] if args.model == "both" else [args.model]:
        with blas_threads(args.threads):
            results = [train(kind, seed) for seed in args.seeds]
        phases = ", then ".join(f"lr {lr:g} for {epochs} epochs" for lr, epochs in PHASES[kind])
        print(f"{kind.upper()} ({phases}):")
        for seed, (accuracy, seconds) in zip(args.seeds, results):
            rows.append({"model": kind.upper(), "seed": seed, "test_accuracy": accuracy,
                         "correct_of_360": round(accuracy * 360), "train_s": seconds})
            print(f"  seed {seed}: test accuracy {accuracy:.4f} ({round(accuracy * 360)}/360), trained in {seconds:.1f} s")
        accuracies = [a for a, _ in results]
        print(f"  min {min(accuracies):.4f}, mean {sum(accuracies) / len(accuracies):.4f}, "
              f"slowest {max(s for _, s in results):.1f} s")
    print(f"threads: {args.threads} (BLAS)")
    return rows


if __name__ == "__main__":
    main()
