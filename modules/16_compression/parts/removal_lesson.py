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
# ## 9. Smaller and faster for real: removing units, running sparse
#
# The most common complaint about pruning libraries is that a pruned model is neither
# smaller nor faster. After `structured_prune(model, 0.5)` half the rows of every hidden
# weight are zero, yet every array has its old shape and every matmul multiplies the
# zeros as diligently as before. PyTorch's `torch.nn.utils.prune` is no different: it
# keeps the dense weight and multiplies a mask into it on every call.
#
# Two ways turn zeros into speed:
#
# 1. **Remove the pruned units** (structured sparsity). A zero row of layer k produces a
#    zero output; the matching column of layer k+1 only ever multiplies that zero. Drop
#    both and the model is a smaller *dense* model: fewer bytes, fewer FLOPs, and the
#    same fast BLAS matmul. This works on any hardware.
# 2. **Skip the zeros inside a layer** (unstructured sparsity). Store only the non-zero
#    weights (CSR) and multiply only those. Each stored weight costs more than a dense
#    one (an index to read, an irregular memory access), so this wins only above some
#    sparsity, and where that crossover lies depends on the batch size and the machine.
#    We measure it instead of assuming it.

# %%
import os
from pathlib import Path

import numpy as np

from tinytorch.compression import magnitude_prune, structured_prune

# %% [markdown]
# ### 9.1 Which units may go: follow each unit to the next layer
#
# Removing output unit j of a layer is exact only if what it sends to the next `Linear`
# or `Conv2d` is exactly zero, for every input. Walk the layers in between:
#
# - the unit's **weight row** must be pruned in the masks, and its **bias** must be 0
#   (a dead ReLU unit with a positive bias still sends `relu(b)` onward);
# - a **BatchNorm2d** turns a zero channel into `beta - mean * gamma / std`, so its scale
#   and shift must be 0 too (`structured_prune` zeroes them; other masks may not);
# - **ReLU, Tanh, GELU, Dropout, pooling** map 0 to 0 channel by channel: they pass;
# - **Sigmoid** maps 0 to 0.5: a removed unit would be missed, so all its units stay;
# - **Softmax** normalises over the units: removing any changes all the others, so it is
#   an error, as is any layer we do not know (an error, never a wrong model);
# - a **Flatten** after a conv turns channel c of an `H x W` map into the block of
#   features `[c*H*W, (c+1)*H*W)` of the next Linear: one channel, one block of columns.
#
# The last Linear/Conv2d keeps all its outputs: they are the classes. And at least one
# unit of every layer stays (an all-zero unit changes nothing and keeps shapes valid).
# `plan_cut` makes this decision for one layer; it returns the keep-mask, the
# BatchNorms that lose the same channels, and how many consumer inputs belong to one unit.

# %%
from tinytorch.compression.surgery import plan_cut, remove_pruned_units, sequential_layers


# %% nbgrader={"grade": true, "grade_id": "test-plan-cut", "locked": true, "points": 3}
def test_unit_plan_cut():
    """Task 16.13"""
    from tinytorch.core.activations import ReLU, Sigmoid, Softmax
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    model = Sequential(Linear(4, 6), ReLU(), Linear(6, 3))
    masks = structured_prune(model, 0.5)
    cut = plan_cut(sequential_layers(model), 0, 2, masks)
    np.testing.assert_array_equal(cut.keep, masks["0.bias"])
    model[0].bias.data[np.flatnonzero(~cut.keep)[0]] = 0.3  # relu(0.3) would still reach layer 2
    assert plan_cut(sequential_layers(model), 0, 2, masks).keep.sum() == 4
    sig = Sequential(Linear(4, 6), Sigmoid(), Linear(6, 3))
    assert plan_cut(sequential_layers(sig), 0, 2, structured_prune(sig, 0.5)).keep.all()
    soft = Sequential(Linear(4, 6), Softmax(), Linear(6, 3))
    try:
        plan_cut(sequential_layers(soft), 0, 2, structured_prune(soft, 0.5))
    except ValueError as err:
        assert "Softmax" in str(err)
    else:
        raise AssertionError("a Softmax between pruned layers must raise")
    cnn = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2), Flatten(), Linear(16, 2))
    cut = plan_cut(sequential_layers(cnn), 0, 5, structured_prune(cnn, 0.5))
    assert cut.keep.sum() == 2 and cut.channels == [cnn[1]] and cut.block == 4  # 2x2 map per channel


# %% [markdown]
# ### 9.2 The smaller model, and why it needs a new optimizer
#
# `remove_pruned_units(model, masks)` copies the model (the original is not touched),
# flattens nested Sequentials, plans every producer -> consumer pair on the unchanged
# copy, and only then slices: rows of the producer (weight and bias), channels of the
# BatchNorms on the way (scale, shift and both running statistics), columns of the
# consumer (`np.repeat(keep, block)` after a Flatten). Its outputs equal the masked
# model's, up to float32 rounding of sums taken in a different order.
#
# To fine-tune the smaller model, build a **new optimizer** on its parameters. The old
# one cannot follow: its `params` list holds the old Tensors, which the new model does
# not use, so stepping it trains a model nobody runs, and its state (momentum, Adam's
# two moments) has the old shapes, `(2048, 512)` where the new weight is `(1024, 512)`.
# Moments of units that no longer exist have no place in the new arrays anyway. The
# masks' post-step hook belongs to the old model as well; the remaining weights of a
# structured-pruned model have no zeros left to protect.

# %% nbgrader={"grade": true, "grade_id": "test-remove-pruned-units", "locked": true, "points": 3}
def test_unit_remove_pruned_units():
    """Task 16.14"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(0)
    cnn = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                     Conv2d(4, 6, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(24, 3))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 1, 8, 8)))
    cnn(x)  # training-mode pass: the running statistics are no longer 0 and 1
    masks = structured_prune(cnn, 0.5)
    small = remove_pruned_units(cnn, masks)
    assert [tuple(p.shape) for p in small.parameters()] == [(2, 1, 3, 3), (2,), (2,), (2,), (3, 2, 3, 3), (3,),
                                                            (3, 12), (3,)]
    cnn.eval()
    small.eval()
    assert np.abs(small(x).data - cnn(x).data).max() < 1e-5
    assert cnn[0].weight.shape == (4, 1, 3, 3)  # the input model is not changed


# %% nbgrader={"grade": true, "grade_id": "test-fine-tune-after-removal", "locked": true, "points": 2}
def test_unit_fine_tune_after_removal():
    """Task 16.14"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(1)
    model = Sequential(Linear(8, 32), ReLU(), Linear(32, 16), ReLU(), Linear(16, 4))
    rng = np.random.default_rng(1)
    x, y = Tensor(rng.standard_normal((64, 8))), rng.integers(0, 4, 64)
    old = Adam(model.parameters(), lr=1e-2)
    loss_fn = CrossEntropyLoss()
    loss_fn(model(x), y).backward()
    old.step()  # the old optimizer now holds (32, 8)-shaped moments
    small = remove_pruned_units(model, structured_prune(model, 0.5))
    assert old.state[0]["exp_avg"].shape == (32, 8) and small[0].weight.shape == (16, 8)
    assert not {id(p) for p in small.parameters()} & {id(p) for p in old.params}
    new = Adam(small.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        new.zero_grad()
        loss = loss_fn(small(x), y)
        loss.backward()
        new.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.95 * losses[0], losses


# %% [markdown]
# ### 9.3 A sparse path for unstructured sparsity
#
# Magnitude pruning leaves zeros scattered everywhere: no unit can go. To gain speed
# from them we must stop storing and multiplying them. **CSR** (compressed sparse row)
# keeps three arrays: the non-zero `values` row after row, the column `indices` of each,
# and `indptr`, where row i's entries start (`indptr[i]:indptr[i+1]`).
#
# `y = x W^T` then needs, for output i, the sum over row i's entries of
# `values[k] * x[:, indices[k]]`. In NumPy: gather the inputs (`np.take(x, indices,
# axis=1)`), multiply by `values`, and add up each row's run with `np.add.reduceat` at
# the row starts. Two traps: reduceat returns the *first element* for an empty run, not
# 0, so only the rows holding entries are reduced; and a batch of 64 would make a
# `64 x nnz` temporary, so the batch goes through in chunks. scipy (the optional extra
# `tinytorch[sparse]`) has the same product as compiled loops; `SparseLinear` uses it
# when it is installed and `csr_matmul` otherwise. Both are tested against the dense layer.
#
# `SparseLinear` is for **inference only**: it has no trainable parameters, so a
# training loop could not update its weights. Rather than stay silently frozen, its
# forward pass raises in training mode with gradients on; gradients do flow through it
# to its input. Prune and fine-tune the dense model (masks attached), then convert.
#
# `to_sparse(model, min_sparsity, batch_size)` times every sufficiently sparse Linear
# both ways on its real weights at the batch size you will serve (`plan_sparse`, with
# the interleaved medians of `time_interleaved`), and swaps in a SparseLinear only
# where it was measured faster.

# %%
from tinytorch.compression.sparse import (SparseChoice, SparseLinear, crossover_sparsity, csr_matmul, plan_sparse,
                                          time_interleaved, to_csr, to_sparse)


# %% nbgrader={"grade": true, "grade_id": "test-to-csr", "locked": true, "points": 1}
def test_unit_to_csr():
    """Task 16.15"""
    w = np.array([[0, 2, 0, 3], [0, 0, 0, 0], [4, 0, 0, 5]], dtype=np.float32)
    values, indices, indptr = to_csr(w)
    np.testing.assert_array_equal(values, [2, 3, 4, 5])
    np.testing.assert_array_equal(indices, [1, 3, 0, 3])
    np.testing.assert_array_equal(indptr, [0, 2, 2, 4])


# %% nbgrader={"grade": true, "grade_id": "test-csr-matmul", "locked": true, "points": 2}
def test_unit_csr_matmul():
    """Task 16.16"""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0.0
    w[3] = 0.0  # an empty row
    x = rng.standard_normal((4, 9)).astype(np.float32)
    np.testing.assert_allclose(csr_matmul(*to_csr(w), x), x @ w.T, atol=1e-5)


# %% nbgrader={"grade": true, "grade_id": "test-sparse-linear", "locked": true, "points": 2}
def test_unit_sparse_linear():
    """Task 16.17"""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(2)
    linear = Linear(30, 20)
    magnitude_prune(Sequential(linear), 0.9)
    x = Tensor(np.random.default_rng(2).standard_normal((3, 30)))
    for backend in ("numpy", "scipy"):
        try:
            layer = SparseLinear.from_linear(linear, backend)
        except ValueError:  # scipy is not installed: only the NumPy path exists
            continue
        np.testing.assert_allclose(layer(x).data, linear(x).data, atol=1e-5)
        layer.train()
        try:
            layer(x)
        except RuntimeError as err:
            assert "inference-only" in str(err)
        else:
            raise AssertionError("training mode with gradients on must raise")
        with no_grad():
            layer(x)


# %% nbgrader={"grade": true, "grade_id": "test-to-sparse", "locked": true, "points": 2}
def test_unit_to_sparse():
    """Task 16.18"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(3)
    model = Sequential(Linear(16, 32), ReLU(), Linear(32, 4))
    magnitude_prune(model, 0.9)
    plan = [SparseChoice("0", (32, 16), 0.9, 2e-6, 1e-6), SparseChoice("2", (4, 32), 0.9, 1e-6, 2e-6)]
    fast = to_sparse(model, plan=plan)  # the plan says: CSR wins for layer 0 only
    assert isinstance(fast[0], SparseLinear) and isinstance(fast[2], Linear) and isinstance(model[0], Linear)
    x = Tensor(np.random.default_rng(3).standard_normal((5, 16)))
    model.eval()
    np.testing.assert_allclose(fast(x).data, model(x).data, atol=1e-5)


# %% [markdown]
# ### 9.4 Measure it: when do zeros become speed?
#
# Three measurements, each timed in interleaved rounds (every variant once per round,
# medians over rounds), so a busy moment of the machine slows all variants alike and
# the ratios hold even when the absolute times wander:
#
# 1. forward latency of the masked model vs the smaller one across structured ratios,
#    next to the FLOP reduction (Module 14's `count_flops`);
# 2. one Linear layer, dense matmul vs CSR across sparsity 50-99%, at batch 1 and 64,
#    with the crossover marked;
# 3. an MLP pruned to 90% unstructured sparsity: latency without and with the sparse path.
#
# NumPy's BLAS is held to one thread where `threadpoolctl` is installed, and then the
# clock is the CPU time of this process: on one thread that is the latency an idle
# machine shows, while elapsed time on a busy machine also counts the moments other
# programs hold the CPU. `TINYTORCH_QUICK=1` shrinks the sizes for a fast smoke run;
# the numbers worth reading come from a full run. Plots go to `$TINYTORCH_PLOTS`
# (default `./compression-plots`).

# %%
import contextlib

QUICK = os.environ.get("TINYTORCH_QUICK") == "1"
PLOTS = Path(os.environ.get("TINYTORCH_PLOTS", "compression-plots"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    return plt


def _plain_log_y(ax, label: str, title: str) -> None:
    """A log y axis with plain numbers (0.5, 2, 10) as tick labels."""
    from matplotlib.ticker import FuncFormatter

    ax.set(yscale="log", ylabel=label, title=title)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # label the 2s and 5s between the powers of ten too
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def _wide_mlp(width: int, seed: int = 0):
    """MLP 512-width-width-10 with random weights (speed does not care about accuracy)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(512, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 10))


def _digits_cnn(seed: int = 0):
    """The digits CNN: Conv 1->8, ReLU, MaxPool, Conv 8->16, ReLU, MaxPool, Flatten, Linear(64, 10)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))


@contextlib.contextmanager
def _one_blas_thread():
    """Hold NumPy's BLAS to one thread where threadpoolctl is installed; yields the clock to time with."""
    # NOTE: on a shared machine a multi-threaded BLAS waits for its threads far longer
    # than it computes, and the dense times would measure the machine's load.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "wall"
        return
    with threadpool_limits(1, user_api="blas"):
        yield "cpu"


def _eval_times(models, x, repeats):
    """Median seconds per forward pass of each model on x, interleaved, eval mode, no graph."""
    from tinytorch.core.autograd import no_grad

    for m in models:
        m.eval()
    with no_grad(), _one_blas_thread() as clock:
        return time_interleaved([lambda m=m: m(x) for m in models], repeats=repeats, clock=clock)


def analysis_structured_speed(ratios=(0.25, 0.5, 0.75, 0.9)):
    """Masked vs removed forward latency across structured ratios, against the FLOP reduction."""
    import copy

    from tinytorch.core.tensor import Tensor
    from tinytorch.profiling import count_flops

    width, batch, repeats = (256, 32, 2) if QUICK else (2048, 256, 11)
    ratios = (0.5, 0.9) if QUICK else ratios
    nets = [(f"MLP 512-{width}-{width}-10", lambda: _wide_mlp(width), (batch, 512)),
            ("digits CNN", _digits_cnn, (batch, 1, 8, 8))]
    rows = []
    for name, build, shape in nets:
        x = Tensor(np.random.default_rng(0).standard_normal(shape))
        base = build()
        for ratio in ratios:
            masked = copy.deepcopy(base)
            small = remove_pruned_units(masked, structured_prune(masked, ratio))
            t_masked, t_small = _eval_times([masked, small], x, repeats)
            flops = count_flops(masked, shape) / count_flops(small, shape)
            rows.append((name, ratio, t_masked, t_small, flops))
    print(f"{'model':<22}{'ratio':>6}{'masked ms':>11}{'removed ms':>11}{'speedup':>9}{'FLOP ratio':>11}")
    for name, ratio, tm, ts, flops in rows:
        print(f"{name:<22}{ratio:>6.2f}{1e3 * tm:>11.2f}{1e3 * ts:>11.2f}{tm / ts:>8.2f}x{flops:>10.2f}x")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, _, _ in nets:
        mine = [r for r in rows if r[0] == name]
        line, = ax.plot([r[1] for r in mine], [r[2] / r[3] for r in mine], "o-", label=f"{name}: measured speedup")
        ax.plot([r[1] for r in mine], [r[4] for r in mine], "s--", color=line.get_color(),
                label=f"{name}: FLOP reduction")
    ax.set(xlabel="structured ratio (fraction of hidden units removed)")
    _plain_log_y(ax, "x faster / x fewer FLOPs", f"Removing pruned units, batch {batch}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS / "structured_speedup.png", dpi=120)
    plt.close(fig)
    return rows


def analysis_csr_crossover(sparsities=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99), batches=(1, 64)):
    """Dense vs CSR time of one Linear layer across sparsity, per batch size, with the crossover."""
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    size, repeats = (256, 2) if QUICK else (1024, 9)
    if QUICK:
        sparsities = (0.5, 0.9, 0.99)
    manual_seed(0)
    layer = Linear(size, size)
    weights = layer.weight.data.copy()
    rng = np.random.default_rng(0)
    results = {b: [] for b in batches}
    for s in sparsities:
        np.copyto(layer.weight.data, weights)
        magnitude_prune(Sequential(layer), s)
        sparse = SparseLinear.from_linear(layer)
        for b in batches:
            x = Tensor(rng.standard_normal((b, size)))
            results[b].append(tuple(_eval_times([layer, sparse], x, repeats)))
    backend = SparseLinear(np.eye(1)).backend
    print(f"Linear({size}, {size}): dense vs CSR ({backend}), ms per forward pass")
    print(f"{'sparsity':>9}" + "".join(f"{f'dense b={b}':>12}{f'CSR b={b}':>12}" for b in batches))
    for i, s in enumerate(sparsities):
        print(f"{s:>9.0%}" + "".join(f"{1e3 * results[b][i][0]:>12.3f}{1e3 * results[b][i][1]:>12.3f}"
                                     for b in batches))
    crossings = {b: crossover_sparsity(sparsities, [d for d, _ in results[b]], [c for _, c in results[b]])
                 for b in batches}
    for b, c in crossings.items():
        print(f"batch {b}: CSR is faster from " + ("-- (never, in this range)" if c is None else f"{c:.1%} sparsity"))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(batches), figsize=(10, 4), sharex=True)
    for ax, b in zip(np.atleast_1d(axes), batches):
        xs = [100 * s for s in sparsities]
        ax.plot(xs, [1e3 * d for d, _ in results[b]], "o-", label="dense matmul")
        ax.plot(xs, [1e3 * c for _, c in results[b]], "s-", label=f"CSR ({backend})")
        if crossings[b] is not None:
            ax.axvline(100 * crossings[b], color="gray", linestyle=":", label=f"crossover {crossings[b]:.0%}")
        ax.set(xlabel="sparsity (%)")
        _plain_log_y(ax, "ms per forward", f"Linear({size}, {size}), batch {b}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "csr_crossover.png", dpi=120)
    plt.close(fig)
    return results, crossings


def analysis_sparse_path(sparsity=0.9, batches=(1, 64)):
    """An MLP at 90% unstructured sparsity: latency dense, pruned (still dense), and with to_sparse."""
    import copy

    from tinytorch.core.tensor import Tensor

    width, repeats = (256, 2) if QUICK else (1024, 11)
    dense = _wide_mlp(width, seed=1)
    pruned = copy.deepcopy(dense)
    magnitude_prune(pruned, sparsity)
    rows = []
    for b in batches:
        with _one_blas_thread() as clock:
            plan = plan_sparse(pruned, min_sparsity=0.5, batch_size=b, repeats=repeats, clock=clock)
        fast = to_sparse(pruned, plan=plan)
        x = Tensor(np.random.default_rng(b).standard_normal((b, 512)))
        times = _eval_times([dense, pruned, fast], x, repeats)
        swapped = [c.name for c in plan if c.use_sparse]
        rows.append((b, *times, swapped))
    print(f"MLP 512-{width}-{width}-10 at {sparsity:.0%} unstructured sparsity, ms per forward pass")
    print(f"{'batch':>6}{'dense':>10}{'pruned':>10}{'to_sparse':>11}  CSR layers")
    for b, d, p, f, swapped in rows:
        print(f"{b:>6}{1e3 * d:>10.3f}{1e3 * p:>10.3f}{1e3 * f:>11.3f}  {', '.join(swapped) or 'none'}"
              f"  (dense / to_sparse = {d / f:.2f}x)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    idx = np.arange(len(rows))
    for k, label in enumerate(["dense", f"{sparsity:.0%} pruned, dense matmul", "with to_sparse"]):
        ax.bar(idx + (k - 1) * 0.27, [r[1 + k] / r[1] for r in rows], width=0.27, label=label)
    ax.set_xticks(idx, [f"batch {r[0]}" for r in rows])
    ax.set(ylabel="latency relative to dense", title=f"MLP 512-{width}-{width}-10, unstructured pruning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "sparse_path_latency.png", dpi=120)
    plt.close(fig)
    return rows


# %% [markdown]
# **Reading the results.** FLOPs count multiply-adds, not memory traffic or fixed
# costs. Where the work is a few large matrix products (the wide MLP), the speedup of
# the smaller model should follow the FLOP reduction closely. Where layers are tiny (the
# digits CNN) it falls short. A convolution here is `im2col` (a copy of its input, work
# in proportion to the input channels), one small matmul (input x output channels: the
# only part FLOPs count) and reshapes of the output (output channels). Halving both
# channel counts quarters the matmul but only halves the copies; the first conv's
# one-channel input is copied whole however many filters remain; pooling moves memory
# rather than multiplying; and every layer call has a fixed Python cost. Compare the
# two lines of each model in `structured_speedup.png`.
#
# For CSR, each stored weight costs an index read and an irregular access to the
# input, so it pays only when most weights are gone; where exactly depends on the batch
# size (a dense product reuses every weight for all rows of the batch, scipy's kernel
# also walks the batch for each stored weight) and on the machine. That is why
# `to_sparse` times both forms at your batch size before it swaps anything. Questions:
# which batch size has the lower crossover here, and why? At 90% unstructured sparsity,
# is the pruned model (dense matmul) any faster than the unpruned one?

# %%
if __name__ == "__main__":
    import time as _time

    for _test in (test_unit_plan_cut, test_unit_remove_pruned_units, test_unit_fine_tune_after_removal,
                  test_unit_to_csr, test_unit_csr_matmul, test_unit_sparse_linear, test_unit_to_sparse):
        _test()
    _start = _time.perf_counter()
    analysis_structured_speed()
    analysis_csr_crossover()
    analysis_sparse_path()
    print(f"analyses took {_time.perf_counter() - _start:.1f} s; plots in {PLOTS}/")
