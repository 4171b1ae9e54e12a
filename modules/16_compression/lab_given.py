# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Module 16, given code: the experiments' bench
#
# No task here. What the lesson's experiments share (`tinytorch/compression/lab.py`):
# quick mode and the plot folder, the small test model, the digits MLP and its training recipe (trained once
# per seed and cached), forward-pass timing with NumPy's BLAS on one thread, the two
# networks the speed experiment times, and one function that draws a line plot to PNG.

# %%
#| default_exp compression.lab

# %%
#| exporti
"""The bench of lesson 16's experiments: the digits recipe, one-thread timing, plots, and the experiments of sections 3 and 6-8 (given code)."""
import os
import tempfile
from pathlib import Path

import numpy as np

_TRAINED: dict = {}
_PLOTS: list = []


def quick_mode() -> bool:
    """True when `TINYTORCH_QUICK=1`: small sizes and few epochs for a fast smoke run."""
    return os.environ.get("TINYTORCH_QUICK") == "1"


def plots_folder() -> Path:
    """`$TINYTORCH_PLOTS`, else `./compression-plots` (a temporary folder in quick mode), created."""
    if not _PLOTS:
        default = tempfile.mkdtemp() if quick_mode() else "compression-plots"
        _PLOTS.append(Path(os.environ.get("TINYTORCH_PLOTS") or default))
    _PLOTS[0].mkdir(parents=True, exist_ok=True)
    return _PLOTS[0]


def toy_mlp(seed: int = 0):
    """The lesson's small test model: Linear(8, 16), ReLU, Linear(16, 12), ReLU, Linear(12, 4)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(8, 16), ReLU(), Linear(16, 12), ReLU(), Linear(12, 4))


def digits_setup(seed: int = 0):
    """The digits loaders (train shuffled with `seed`, test in one batch) and a fresh 64-128-64-10 MLP."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed
    from tinytorch.data.loader import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    x_train, y_train, x_test, y_test = load_digits(flat=True)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=seed)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test))
    manual_seed(seed)
    return Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10)), train, test


def trained_digits(seed: int = 0):
    """(model, train, test): the MLP trained with Adam (lr 3e-3, 25 epochs; 5 in quick mode), once per seed."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import fit

    model, train, test = digits_setup(seed)
    if seed not in _TRAINED:
        epochs = 5 if quick_mode() else 25
        fit(model, Adam(model.parameters(), lr=3e-3), CrossEntropyLoss(), train, epochs, progress=False)
        _TRAINED[seed] = model.state_dict()
    model.load_state_dict(_TRAINED[seed])
    return model, train, test


def forward_times(models, x, repeats: int) -> list[float]:
    """Median seconds per forward pass of each model on `x`: interleaved rounds, eval mode, no graph."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.profiling import time_interleaved

    for m in models:
        m.eval()
    # NOTE: time_interleaved holds BLAS to one thread; there the CPU clock is the latency
    # an idle machine would show, blind to other programs on a shared one.
    with no_grad():
        return time_interleaved([lambda m=m: m(x) for m in models], repeats=repeats, clock="cpu")


def speed_nets():
    """(name, model, input shape): an MLP 512-2048-2048-10 and the digits CNN, batch 256 (small in quick mode)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    width, batch = (256, 32) if quick_mode() else (2048, 256)
    manual_seed(0)
    mlp = Sequential(Linear(512, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 10))
    cnn = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                     Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    return [(f"MLP 512-{width}-{width}-10", mlp, (batch, 512)), ("digits CNN", cnn, (batch, 1, 8, 8))]


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (no window opens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(name: str, lines, xlabel: str, ylabel: str, title: str, hline=None, yscale: str = "linear") -> Path:
    """Draw `lines`, each `(xs, ys, style, label)`, with an optional dashed `(y, label)` line; save as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if hline is not None:
        ax.axhline(hline[0], color="gray", linestyle="--", label=hline[1])
    for xs, ys, style, label in lines:
        ax.plot(xs, ys, style, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale=yscale)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = plots_folder() / name
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# %% [markdown]
# The experiments of sections 3, 6, 7 and 8 (one-shot against iterative pruning; structured
# against unstructured, and the speed of removing units). They run the exported
# package: `tito export 16` first when you have changed a task.

# %%
#| exporti
import copy

from tinytorch.compression import (IterativePruner, SizeReport, compressed_size, fine_tune, magnitude_prune,
                                   prunable_layers, prune_and_quantize, remove_pruned_units, sparsity_report,
                                   structured_prune)
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import evaluate
from tinytorch.profiling import count_flops


def _one_shot_and_iterative(seed: int, target: float, steps: int, per_step: int, final: int):
    model, train, test = trained_digits(seed)
    masks = magnitude_prune(model, target)
    raw = evaluate(model, test)
    fine_tune(model, Adam(model.parameters(), lr=5e-3), CrossEntropyLoss(), train, steps * per_step + final, masks)
    one_shot = evaluate(model, test)
    model, train, test = trained_digits(seed)
    opt = Adam(model.parameters(), lr=5e-3)
    pruner = IterativePruner(target, steps)
    pruner.run(model, opt, CrossEntropyLoss(), train, per_step)
    fine_tune(model, opt, CrossEntropyLoss(), train, final, pruner.masks)
    return raw, one_shot, evaluate(model, test), model


def analysis_one_shot_vs_iterative(sparsities=(0.5, 0.8, 0.9, 0.95, 0.98, 0.99)):
    """Mean test accuracy over seeds: pruned without tuning, one-shot + tuning, iterative (same epochs)."""
    seeds, (steps, per_step, final) = ((0,), (2, 1, 1)) if quick_mode() else ((0, 1, 2), (5, 5, 10))
    sparsities = sparsities[-2:] if quick_mode() else sparsities
    dense = np.mean([evaluate(*trained_digits(s)[::2]) for s in seeds])
    rows, pruned = [], {}
    for target in sparsities:
        runs = [_one_shot_and_iterative(s, target, steps, per_step, final) for s in seeds]
        rows.append((target, *np.mean([r[:3] for r in runs], axis=0)))
        pruned[target] = runs[0][3]
    print(f"dense accuracy {dense:.4f} (mean over seeds {seeds}); {steps * per_step + final} fine-tuning "
          "epochs for both methods")
    print(f"{'sparsity':>9}{'no tuning':>11}{'one-shot + tune':>17}{'iterative':>11}{'difference':>12}")
    for target, raw, one, it in rows:
        print(f"{target:>9.0%}{raw:>11.4f}{one:>17.4f}{it:>11.4f}{100 * (it - one):>+11.1f}pt")
    xs = [100 * r[0] for r in rows]
    save_plot("accuracy_vs_sparsity.png", [(xs, [100 * r[i] for r in rows], style, label) for i, style, label in (
        (1, "x:", "pruned, no fine-tuning"), (2, "o-", "one-shot + fine-tuning"), (3, "s-", "iterative (cubic)"))],
        "sparsity (%)", "test accuracy (%)", "Digits MLP 64-128-64-10", hline=(100 * dense, "dense"))
    return rows, pruned


def analysis_structured_vs_unstructured(ratio: float = 0.5):
    """Dense, structured with units removed, and unstructured with as many weights: accuracy and time."""
    epochs, repeats = (2, 3) if quick_mode() else (10, 21)
    dense, train, test = trained_digits()
    structured = copy.deepcopy(dense)
    masks = structured_prune(structured, ratio)
    fine_tune(structured, Adam(structured.parameters(), lr=5e-3), CrossEntropyLoss(), train, epochs, masks)
    small = remove_pruned_units(structured, masks)
    total = sparsity_report(dense).total.params
    removed = 1 - sparsity_report(small).total.params / total
    unstructured = copy.deepcopy(dense)
    masks = magnitude_prune(unstructured, removed)
    fine_tune(unstructured, Adam(unstructured.parameters(), lr=5e-3), CrossEntropyLoss(), train, epochs, masks)
    variants = [("dense", dense), (f"structured {ratio}, units removed", small),
                (f"unstructured {removed:.1%}, same weights", unstructured)]
    x = Tensor(np.random.default_rng(0).standard_normal((256, 64)))
    seconds = forward_times([m for _, m in variants], x, repeats)
    print(f"{'variant':<36}{'non-zero weights':>17}{'accuracy':>10}{'us / batch':>12}{'speedup':>9}")
    for (label, m), t in zip(variants, seconds):
        nonzero = sum(r.params - r.zeros for r in sparsity_report(m))
        print(f"{label:<36}{nonzero:>17,}{evaluate(m, test):>10.4f}{1e6 * t:>12.0f}{seconds[0] / t:>8.2f}x")


def analysis_structured_speed(ratios=(0.25, 0.5, 0.75, 0.9)):
    """Forward time of each speed network, masked against units removed, beside the FLOP ratio."""
    repeats, ratios = (2, (0.5,)) if quick_mode() else (11, ratios)
    rows = []
    for name, base, shape in speed_nets():
        x = Tensor(np.random.default_rng(0).standard_normal(shape))
        for ratio in ratios:
            masked = copy.deepcopy(base)
            small = remove_pruned_units(masked, structured_prune(masked, ratio))
            t_masked, t_small = forward_times([masked, small], x, repeats)
            rows.append((name, ratio, t_masked, t_small, count_flops(masked, shape) / count_flops(small, shape)))
    print(f"{'model':<24}{'ratio':>6}{'masked ms':>11}{'removed ms':>11}{'speedup':>9}{'FLOP ratio':>11}")
    for name, ratio, tm, ts, flops in rows:
        print(f"{name:<24}{ratio:>6.2f}{1e3 * tm:>11.3f}{1e3 * ts:>11.3f}{tm / ts:>8.2f}x{flops:>10.2f}x")
    lines = []
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        lines += [([r[1] for r in mine], [r[2] / r[3] for r in mine], "o-", f"{name}: measured speedup"),
                  ([r[1] for r in mine], [r[4] for r in mine], "s--", f"{name}: FLOP ratio")]
    save_plot("structured_speedup.png", lines, "structured ratio (fraction of hidden units removed)", "x",
              "Removing pruned units", yscale="log")
    return rows


def analysis_weight_histogram(sparsity: float = 0.8):
    """Histogram of |w| of the trained MLP before and after global magnitude pruning."""
    plt = pyplot()
    model, _, test = trained_digits()
    before = np.abs(np.concatenate([l.weight.data.ravel() for _, l in prunable_layers(model)]))
    dense = evaluate(model, test)
    magnitude_prune(model, sparsity)
    after = np.abs(np.concatenate([l.weight.data.ravel() for _, l in prunable_layers(model)]))
    kept = after[after != 0]
    print(sparsity_report(model))
    print(f"threshold: |w| < {kept.min():.4f} pruned; largest |w| {before.max():.3f}")
    print(f"test accuracy: dense {dense:.4f}, {sparsity:.0%} pruned without fine-tuning {evaluate(model, test):.4f}")
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, before.max(), 60)
    ax.hist(before, bins=bins, alpha=0.5, label=f"before: {before.size:,} weights")
    ax.hist(kept, bins=bins, alpha=0.7, label=f"after {sparsity:.0%} global pruning: {kept.size:,} survivors")
    ax.set(xlabel="|w|", ylabel="weights", yscale="log", title="Digits MLP: weight magnitudes")
    ax.legend(fontsize=8)
    fig.savefig(plots_folder() / "weight_histogram.png", dpi=120)
    plt.close(fig)


def analysis_prune_plus_int8(pruned: dict):
    """Bytes per format, real file bytes and test accuracy of each pruned model after INT8."""
    dense, _, test = trained_digits()
    weights = sum(layer.weight.data.nbytes for _, layer in prunable_layers(dense))
    print(f"dense float32 weights: {weights:,} bytes, accuracy {evaluate(dense, test):.4f}")
    variants = [("INT8 only", dense, {}), *[(f"{t:.0%} + INT8{label}", m, kw) for t, m in pruned.items() for label, kw
                                            in (("", {}), (", 1 scale, int8 bias", {"per_channel": False, "int8_bias": True}))]]
    formats = SizeReport.formats[1:]
    print(f"{'variant':<30}" + "".join(f"{f[:-5]:>9}" for f in formats) + f"{'file':>8}{'ratio':>8}{'accuracy':>9}")
    for label, model, kw in variants:
        small = prune_and_quantize(model, sparsity=None, **kw)
        report = compressed_size(small)
        print(f"{label:<30}" + "".join(f"{report.total(f):>9,}" for f in formats)
              + f"{report.file_bytes:>8,}{weights / report.file_bytes:>7.1f}x{evaluate(small, test):>9.4f}")
