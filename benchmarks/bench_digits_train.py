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
test images. The time is the wall-clock time of training (the `fit` calls) alone.

    python benchmarks/bench_digits_train.py [--seeds 0 1 2] [--threads 1] [--model mlp|cnn|both]
"""
from __future__ import annotations

import argparse
import time


def build(kind: str):
    """The recipe's network for `kind` ("mlp" or "cnn")."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    if kind == "mlp":
        return Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))
    return Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))


# (learning rate, epochs) phases of each recipe.
PHASES = {"mlp": [(0.05, 60), (0.005, 20)], "cnn": [(3e-3, 50), (3e-4, 10)]}


def optimizer_for(kind: str, params):
    """The recipe's optimizer for `kind`."""
    from tinytorch.core.optimizers import SGD, Adam

    if kind == "mlp":
        return SGD(params, lr=PHASES["mlp"][0][0], momentum=0.9, weight_decay=5e-4)
    return Adam(params, lr=PHASES["cnn"][0][0])


def train(kind: str, seed: int) -> tuple[float, float]:
    """Train one network with the recipe; returns (test accuracy, training seconds)."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.tensor import manual_seed
    from tinytorch.core.training import evaluate, fit
    from tinytorch.data import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits(flat=(kind == "mlp"))
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=seed)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=360)
    model = build(kind)
    optimizer = optimizer_for(kind, model.parameters())
    start = time.perf_counter()
    for lr, epochs in PHASES[kind]:
        optimizer.lr = lr
        fit(model, optimizer, CrossEntropyLoss(), train_loader, epochs)
    seconds = time.perf_counter() - start
    return evaluate(model, test_loader), seconds


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
