"""The digits compression pipeline, run the same way in TinyTorch and in PyTorch: accuracy, bytes, time.

Pipeline (the recipe of Module 16's digits tests): the MLP 64-128-64-10 trained with
Adam(lr=3e-3) for 25 epochs; then 5 pruning steps on the cubic schedule up to 90% global
magnitude sparsity, each followed by 5 epochs of fine-tuning with a fresh Adam(lr=5e-3)
that lives through all the steps; then 10 more epochs with the masks held.

TinyTorch runs it with `IterativePruner` and `fine_tune`; PyTorch with
`torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`, whose masks are
re-applied by a forward pre-hook. Both start from the same initial weights (TinyTorch's,
copied into PyTorch), see the same batches in the same order (two `DataLoader`s with the
same seed), use the same Adam settings, and prune the same number of weights at each
step (PyTorch's integer `amount` counts the weights still unpruned, so it is the number
still to prune). Differences in the result come from floating-point order only.

Then the bytes on disk of each pruned model:
- TinyTorch: `prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True)`
  written by `save_compressed` (sparse INT8), and the pruned fp32 model through the same
  writer; the accuracy is measured on the model read back from the file;
- PyTorch: `torch.save(state_dict)` after `prune.remove` (dense fp32 with zeros), the same
  with every 2-D weight as `to_sparse_csr()`, and the dense file compressed with xz (LZMA).

    python benchmarks/bench_pipeline.py [--seeds 0 1 2] [--quick]

PyTorch is optional: without it, only TinyTorch's pipeline runs and the PyTorch
fields are None. Both frameworks run on one thread (BLAS and PyTorch's pool). Times are
the CPU seconds of the process (and wall-clock) of one run each, so they are rougher than
the interleaved timings of the other benchmarks.
"""
from __future__ import annotations

import argparse
import io
import lzma
import os
import tempfile
import time
import warnings
from dataclasses import dataclass

SIZES = (64, 128, 64, 10)
TARGET = 0.9


@dataclass(frozen=True)
class Schedule:
    """Epochs of each phase."""

    train_epochs: int = 25
    steps: int = 5
    epochs_per_step: int = 5
    final_epochs: int = 10
    batch_size: int = 64

    def training(self, seed: int):
        """Module 09's `DigitsRecipe` for the first phase: Adam, lr 3e-3, `train_epochs`, batches in `seed`'s order."""
        from tinytorch.recipes import DigitsRecipe

        return DigitsRecipe(epochs=self.train_epochs, lr=3e-3, batch_size=self.batch_size, seed=seed)


FULL, QUICK = Schedule(), Schedule(train_epochs=3, steps=2, epochs_per_step=1, final_epochs=1)


def digits():
    """(x_train, y_train, x_test, y_test), flat rows."""
    from tinytorch.datasets import load_digits

    return load_digits(flat=True)


def loader(x, y, batch_size: int, seed: int):
    """The shuffled training loader; two built with the same seed give the same batches."""
    from tinytorch.data.loader import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)


def tinytorch_model(seed: int):
    """The digits MLP of Module 09's `tinytorch.recipes`, drawn with `seed`."""
    from tinytorch.recipes import digits_mlp

    return digits_mlp(SIZES, seed)


def run_tinytorch(model, data, schedule: Schedule, seed: int) -> dict:
    """The pipeline in TinyTorch; returns accuracies, sparsity, seconds and the pruned model."""
    from tinytorch.compression import IterativePruner, fine_tune, measure_sparsity
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate
    from tinytorch.data.loader import DataLoader, TensorDataset

    x_train, y_train, x_test, y_test = data
    train = loader(x_train, y_train, schedule.batch_size, seed)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test))
    start, cpu = time.perf_counter(), time.process_time()
    dense = schedule.training(seed).fit(model, train, test).accuracy
    optimizer = Adam(model.parameters(), lr=5e-3)
    pruner = IterativePruner(TARGET, steps=schedule.steps)
    history = pruner.run(model, optimizer, CrossEntropyLoss(), train, schedule.epochs_per_step,
                         evaluate=lambda m: evaluate(m, test))
    fine_tune(model, optimizer, CrossEntropyLoss(), train, schedule.final_epochs, masks=pruner.masks, progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"dense": dense, "steps": [row["accuracy"] for row in history], "final": evaluate(model, test),
            "sparsity": measure_sparsity(model), "seconds": seconds, "cpu_seconds": cpu, "model": model}


def tinytorch_bytes(model, data) -> dict:
    """Bytes of the pruned model written by `save_compressed`, fp32 and INT8, and INT8's accuracy from disk."""
    from tinytorch.compression import load_compressed, prune_and_quantize, save_compressed
    from tinytorch.core.training import evaluate
    from tinytorch.data.loader import DataLoader, TensorDataset

    _, _, x_test, y_test = data
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = save_compressed(model, os.path.join(tmp, "fp32.ttz"))
        path = os.path.join(tmp, "int8.ttz")
        int8 = save_compressed(prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True), path)
        accuracy = evaluate(load_compressed(path), DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test)))
    return {"tinytorch_fp32_bytes": fp32, "tinytorch_int8_bytes": int8, "tinytorch_int8_accuracy": accuracy}


def torch_copy(torch, model):
    """The same MLP in PyTorch with `model`'s current weights."""
    nn = torch.nn
    theirs = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for (_, ours), p in zip(model.named_parameters(), theirs.parameters()):
            p.copy_(torch.from_numpy(ours.data))
    return theirs


def run_torch(torch, model, data, schedule: Schedule, seed: int) -> dict:
    """The pipeline in PyTorch with torch.nn.utils.prune; same batches, same schedule."""
    from torch.nn.utils import prune

    from tinytorch.compression import sparsity_schedule

    x_train, y_train, x_test, y_test = data
    batches = loader(x_train, y_train, schedule.batch_size, seed)  # the twin of TinyTorch's loader
    inputs, labels = torch.from_numpy(x_test), torch.from_numpy(y_test)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epochs(optimizer, n: int) -> None:
        model.train()
        for _ in range(n):
            for x, y in batches:
                optimizer.zero_grad()
                loss_fn(model(torch.from_numpy(x.data)), torch.from_numpy(y)).backward()
                optimizer.step()

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            return float((model(inputs).argmax(1) == labels).float().mean())

    linears = [(m, "weight") for m in model if isinstance(m, torch.nn.Linear)]
    total = sum(m.weight.numel() for m, _ in linears)
    start, cpu = time.perf_counter(), time.process_time()
    epochs(torch.optim.Adam(model.parameters(), lr=3e-3), schedule.train_epochs)
    dense = accuracy()
    # NOTE: pruning re-registers each weight as `weight_orig` (the same Parameter object),
    # so the optimizer made here keeps updating it; the mask hides the pruned entries.
    optimizer, steps, pruned = torch.optim.Adam(model.parameters(), lr=5e-3), [], 0
    for step in range(1, schedule.steps + 1):
        goal = round(sparsity_schedule(step, schedule.steps, TARGET) * total)
        prune.global_unstructured(linears, pruning_method=prune.L1Unstructured, amount=goal - pruned)
        pruned = goal
        epochs(optimizer, schedule.epochs_per_step)
        steps.append(accuracy())
    epochs(optimizer, schedule.final_epochs)
    for m, name in linears:
        prune.remove(m, name)  # permanent: plain weights with zeros, as a user saves them
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    zeros = sum(int((m.weight == 0).sum()) for m, _ in linears)
    return {"dense": dense, "steps": steps, "final": accuracy(), "sparsity": zeros / total, "seconds": seconds,
            "cpu_seconds": cpu}


def torch_bytes(torch, model) -> dict:
    """Bytes of `torch.save(state_dict)`: dense fp32, with CSR weights, and the dense file xz-compressed."""
    def saved(state) -> bytes:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    state = model.state_dict()
    dense = saved(state)
    with warnings.catch_warnings():  # PyTorch calls its CSR tensors beta on every conversion
        warnings.simplefilter("ignore", UserWarning)
        csr = saved({k: v.to_sparse_csr() if v.dim() == 2 else v for k, v in state.items()})
    return {"torch_dense_bytes": len(dense), "torch_csr_bytes": len(csr),
            "torch_dense_xz_bytes": len(lzma.compress(dense, preset=9 | lzma.PRESET_EXTREME))}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a few epochs, one seed (checks that it runs)")
    args = parser.parse_args(argv)
    # NOTE: BLAS reads these when NumPy is first imported, so they are set before that.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    schedule, seeds = (QUICK, args.seeds[:1]) if args.quick else (FULL, args.seeds)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    data = digits()
    rows = []
    for seed in seeds:
        model = tinytorch_model(seed)
        twin = torch_copy(torch, model) if torch is not None else None  # before training: same init
        ours = run_tinytorch(model, data, schedule, seed)
        row = {"seed": seed, "weights": sum(p.data.size for p in model.parameters()),
               "dense_fp32_bytes": 4 * sum(p.data.size for p in model.parameters())}
        row.update({f"tinytorch_{k}": v for k, v in ours.items() if k != "model"})
        row.update(tinytorch_bytes(ours["model"], data))
        theirs = run_torch(torch, twin, data, schedule, seed) if torch is not None else {}
        for key in ("dense", "steps", "final", "sparsity", "seconds", "cpu_seconds"):
            row[f"torch_{key}"] = theirs.get(key)
        row.update(torch_bytes(torch, twin) if torch is not None else
                   {"torch_dense_bytes": None, "torch_csr_bytes": None, "torch_dense_xz_bytes": None})
        rows.append(row)
        torch_part = ("torch not installed" if torch is None else
                      f"torch dense {row['torch_dense']:.4f} -> 90% {row['torch_final']:.4f} "
                      f"({row['torch_cpu_seconds']:.1f} s CPU)")
        print(f"seed {seed}: TinyTorch dense {row['tinytorch_dense']:.4f} -> 90% {row['tinytorch_final']:.4f} "
              f"-> INT8 file {row['tinytorch_int8_accuracy']:.4f} ({row['tinytorch_cpu_seconds']:.1f} s CPU) | {torch_part}",
              flush=True)
        sizes = [f"TinyTorch INT8 file {row['tinytorch_int8_bytes']:,} B", f"fp32 file {row['tinytorch_fp32_bytes']:,} B"]
        if torch is not None:
            sizes += [f"torch.save dense {row['torch_dense_bytes']:,} B", f"CSR {row['torch_csr_bytes']:,} B",
                      f"dense + xz {row['torch_dense_xz_bytes']:,} B"]
        print("        " + ", ".join(sizes), flush=True)
    return rows


if __name__ == "__main__":
    main()
