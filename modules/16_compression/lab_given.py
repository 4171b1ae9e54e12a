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
# quick mode and the plot folder, the small test model, the digits MLP trained by Module 09's recipe (once
# per seed, cached), forward-pass timing with NumPy's BLAS on one thread, the two
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

from tinytorch.core.files import write_figure
from tinytorch.recipes import DigitsRecipe, digits_cnn, digits_loaders, digits_mlp

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
    return digits_mlp((8, 16, 12, 4), seed)


def digits_setup(seed: int = 0):
    """A fresh digits MLP 64-128-64-10 (drawn with `seed`) and the recipe's loaders (Module 09's `tinytorch.recipes`)."""
    return (digits_mlp(seed=seed), *digits_loaders(seed))


def trained_digits(seed: int = 0):
    """(model, train, test): the MLP trained by Module 09's `DigitsRecipe` (Adam, lr 3e-3, 25 epochs; 5 in
    quick mode), once per seed."""
    model, train, test = digits_setup(seed)
    if seed not in _TRAINED:
        recipe = DigitsRecipe(epochs=5 if quick_mode() else 25, lr=3e-3, seed=seed)
        _TRAINED[seed] = recipe.fit(model, train, test).model.state_dict()
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
    width, batch = (256, 32) if quick_mode() else (2048, 256)
    mlp = digits_mlp((512, width, width, 10), seed=0)
    cnn = digits_cnn(seed=None)  # drawn after the MLP from the same stream
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
    write_figure(fig, path)
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
    write_figure(fig, plots_folder() / "weight_histogram.png")
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


# %% [markdown]
# The "going further" experiment of section 7: the pruned models shared with k-means
# (2-5 bits, centroids fine-tuned) and entropy-coded, against INT8, as files on disk.

# %%
#| exporti
def _shared_rows(target: float, model, train, test, bits_list, epochs: int, folder) -> list[tuple]:
    """(sparsity, setting, bytes, bound, accuracy) of `model` as an INT8 file and as shared-weight files."""
    from tinytorch.compression import entropy_bound, fine_tune_centroids, load_compressed, save_compressed

    settings = [("INT8", 8, prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True))]
    for bits in bits_list:
        shared = prune_and_quantize(model, sparsity=None, bits=bits, codebook="kmeans", int8_bias=True)
        fine_tune_centroids(shared, CrossEntropyLoss(), train, epochs, lr=1e-3, progress=False)
        settings.append((f"{bits}-bit shared", bits, shared))
    rows = []
    for label, bits, small in settings:
        path = folder / f"mlp_{round(100 * target)}pct_{bits}bit.ttz"
        written = save_compressed(small, path)
        rows.append((target, label, written, entropy_bound(small)["total"], evaluate(load_compressed(path), test)))
    return rows


def mark_page_ratios(ax, dense_bytes: float, dense_accuracy: float) -> None:
    """On a plot of file bytes (x) against accuracy in % (y): the page's 40x, its 50-100x and the dense accuracy."""
    ax.axvline(dense_bytes / 40, color="gray", linestyle="--", label="40x (the page's 'combined')")
    ax.axvspan(dense_bytes / 100, dense_bytes / 50, color="gray", alpha=0.15, label="50-100x (the page's 'possible')")
    ax.axhline(100 * dense_accuracy, color="black", linewidth=0.8, label="dense fp32")


def analysis_weight_sharing(pruned: dict, bits_list=(2, 3, 4, 5)):
    """Section 6's pruned models as files: INT8 against k-means shared weights (`bits_list`,
    centroids fine-tuned), with the entropy bound of each file and its test accuracy; plotted."""
    from tinytorch.compression.container import to_bytes

    dense, train, test = trained_digits()
    dense_bytes, dense_acc = len(to_bytes(dense)), evaluate(dense, test)
    bits_list, epochs = ((2, 4), 1) if quick_mode() else (bits_list, 10)
    folder = plots_folder() / "shared_files"
    folder.mkdir(exist_ok=True)
    rows = [row for target, model in pruned.items() if target >= 0.9
            for row in _shared_rows(target, model, train, test, bits_list, epochs, folder)]
    print(f"dense fp32 file {dense_bytes:,} bytes, accuracy {dense_acc:.4f}; files in {folder}")
    print(f"{'sparsity':>9}{'setting':>15}{'bytes':>8}{'ratio':>8}{'bound':>8}{'file/bound':>11}{'accuracy':>10}")
    for target, label, written, bound, acc in rows:
        print(f"{target:>9.0%}{label:>15}{written:>8,}{dense_bytes / written:>7.1f}x{bound:>8,.0f}"
              f"{written / bound:>11.2f}{acc:>10.4f}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label in dict.fromkeys(r[1] for r in rows):
        points = sorted((r[2], 100 * r[4]) for r in rows if r[1] == label)
        ax.plot(*zip(*points), "s-" if label == "INT8" else "o-", label=label)
    mark_page_ratios(ax, dense_bytes, dense_acc)
    ax.set(xscale="log", xlabel="file bytes (log); points: the sparsities of section 6",
           ylabel="test accuracy (%)", title="Digits MLP: file bytes against accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure(fig, plots_folder() / "sharing_bytes_vs_accuracy.png")
    plt.close(fig)
    return rows
