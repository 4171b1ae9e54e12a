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
# # Module 16, given code: the page's three questions
#
# This file is part of Module 16 but holds no task. It is the code behind the lesson's
# last section, which asks the course page's questions and answers them by measurement:
#
# - `tinytorch/compression/teacher.py`: `distill`, Module 07's training loop with a
#   teacher beside it (the loss itself, `distillation_loss`, is a task of the lesson).
# - `tinytorch/compression/lowrank.py`: `low_rank`, a Linear split in two by a
#   truncated SVD, the third way to shrink a layer.
# - `tinytorch/compression/experiments.py`: the experiments themselves (lottery
#   tickets, distillation against pruning, low rank against pruning, sensitivity-driven
#   allocation), each returning rows the lesson prints and plots. Their networks, data
#   and training come from Module 09's `tinytorch.recipes`.
#
# `tito export 16` exports it with the lesson.

# %%
#| default_exp compression.experiments

# %%
#| export compression.teacher
from __future__ import annotations
"""Distillation's training loop: the student fits a teacher's softened outputs, the teacher untouched (given code)."""

import numpy as np

from tinytorch.compression.container import module_modes, set_module_modes
from tinytorch.compression.distill import distillation_loss
from tinytorch.compression.iterative import fine_tune
from tinytorch.compression.prune import Masks
from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_finite, check_instance, check_number
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor

# %% [markdown]
# ### Training a student from a teacher
#
# `fit` calls `loss_fn(model(x), y)`, so a loss that needs the teacher's logits must
# find them in `y`. `_WithTeacher` wraps the loader: for each batch it runs the
# teacher (eval mode, no graph) and hands the loss the labels and the teacher's logits
# together. The student's loop is then Module 07's, masks and all, unchanged.

# %%
#| export compression.teacher
class _Targets:
    """The labels of a batch and the teacher's logits for it; `len` is the batch size, as `fit` expects."""

    def __init__(self, labels, logits: np.ndarray):
        self.labels, self.logits = labels, logits

    def __len__(self) -> int:
        return len(self.logits)


class _WithTeacher:
    """A loader whose batches are `(x, _Targets(y, teacher(x)))`."""

    def __init__(self, loader, teacher: Module):
        self.loader, self.teacher = loader, teacher

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            x, y = batch[0], batch[1]
            check_finite(f"the inputs of batch {i}", x)
            with no_grad():  # the teacher is a constant: no graph, no gradients
                logits = check_finite(f"the teacher's logits for batch {i}", self.teacher(x).data)
            yield x, _Targets(y, logits)


def _check_kd(temperature, alpha) -> None:
    check_number("temperature", temperature, 0.0, np.inf, low_open=True, high_open=True)
    check_number("alpha", alpha, 0.0, 1.0)


def distill(student: Module, teacher: Module, optimizer, loader, epochs: int, temperature: float = 4.0,
            alpha: float = 0.9, masks: Masks | None = None, progress: bool | None = None) -> list[dict]:
    """Train `student` on `distillation_loss` against `teacher`'s logits; returns `fit`'s history.

    Args:
        student: the network trained (its optimizer is `optimizer`).
        teacher: a trained network; run in eval mode without gradients and left unchanged
            (its mode is restored afterwards).
        optimizer, loader, epochs: as for `fit`.
        temperature, alpha: as for `distillation_loss`.
        masks: a pruned student's keep-masks, held after every step (see `fine_tune`).
        progress: show a progress bar (default: only on a terminal).

    Raises:
        ValueError: `temperature` or `alpha` out of range, or `student` is `teacher`.
    """
    _check_kd(temperature, alpha)
    if student is teacher:
        raise ValueError("student and teacher must be two models; got the same one twice")
    check_instance("teacher", teacher, Module, "a tinytorch Module")

    def loss_fn(logits: Tensor, target: _Targets) -> Tensor:
        return distillation_loss(logits, target.logits, target.labels, temperature, alpha)

    modes = module_modes(teacher)
    teacher.eval()  # dropout off, batch norm on its running statistics
    try:
        return fine_tune(student, optimizer, loss_fn, _WithTeacher(loader, teacher), epochs, masks, progress)
    finally:
        set_module_modes(teacher, modes)  # each module's own mode, as it was

# %% [markdown]
# ### Low rank: a Linear split in two
#
# A weight matrix W (out x in) is U S V^T. Keeping the r largest singular values gives
# the closest rank-r matrix (Eckart-Young), and it factors into two smaller layers: x
# goes through `Linear(in, r, bias=False)` with weight sqrt(S_r) V_r^T, then
# `Linear(r, out)` with weight U_r sqrt(S_r) and the original bias. That is
# r (in + out) weights instead of in x out: fewer when r < in out / (in + out). The
# square root of S goes to both halves so that neither is much larger than the other
# when you fine-tune them.

# %%
#| export compression.lowrank
"""Low-rank factorisation of a Linear from its truncated SVD, by rank or kept energy (given code)."""
import numpy as np

from tinytorch.core.checks import check_finite, check_instance, check_int, check_number
from tinytorch.core.layers import Linear, Sequential


def _rank_for_energy(singular: np.ndarray, energy: float) -> int:
    """The smallest r whose r largest singular values hold `energy` of the sum of squares."""
    squares = singular.astype(np.float64) ** 2
    kept = np.cumsum(squares) / squares.sum() if squares.sum() > 0 else np.ones_like(squares)
    # NOTE: a tiny slack, so energy=1.0 is not missed by a rounding error in the last sum.
    return int(np.searchsorted(kept, energy - 1e-12) + 1)


def low_rank(layer: Linear, rank: int | None = None, energy: float | None = None) -> Sequential:
    """`layer` as `Sequential(Linear(in, r, bias=False), Linear(r, out))` from a truncated SVD.

    Args:
        layer: the Linear to factor (left unchanged).
        rank: r, an integer in [1, min(in, out)]; or
        energy: a fraction in (0, 1]: r is the smallest rank keeping that share of the
            sum of squared singular values. Give exactly one of the two.

    Returns:
        The two layers; at full rank their output equals `layer`'s up to rounding.

    Raises:
        TypeError: `layer` is not a Linear.
        ValueError: both or neither of `rank` and `energy`, either out of range, or a NaN or
            infinite weight (LAPACK's SVD may never return on an inf).
    """
    check_instance("layer", layer, Linear, "a Linear (low_rank factors its weight)")
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy, got rank={rank!r}, energy={energy!r}")
    full = min(layer.in_features, layer.out_features)
    if rank is not None:
        check_int("rank", rank, 1, full)  # full: the smaller side of the weight
    if energy is not None:
        check_number("energy", energy, 0.0, 1.0, low_open=True)
    check_finite("layer.weight", layer.weight.data)  # NOTE: before the SVD, which can hang on an inf
    if layer.bias is not None:
        check_finite("layer.bias", layer.bias.data)
    u, s, vt = np.linalg.svd(layer.weight.data.astype(np.float64), full_matrices=False)
    r = int(rank) if rank is not None else min(_rank_for_energy(s, energy), full)
    root = np.sqrt(s[:r])
    first, second = Linear(layer.in_features, r, bias=False), Linear(r, layer.out_features,
                                                                     bias=layer.bias is not None)
    first.weight.data[...] = root[:, None] * vt[:r]
    second.weight.data[...] = u[:, :r] * root[None, :]
    if layer.bias is not None:
        second.bias.data[...] = layer.bias.data
    return Sequential(first, second)

# %% [markdown]
# ### The experiments
#
# Every experiment below starts from the same digits MLP (64-128-64-10) and recipe as
# section 8 of the lesson (Adam, lr 3e-3, batch 64, 25 epochs), built here so that the
# lesson and `benchmarks/bench_questions.py` run the same code. Each returns plain rows
# (dicts), one per seed and setting; `summarize` turns them into means and spreads.

# %%
#| exporti compression.experiments
"""The experiments of lesson 16's section 9: lottery tickets, distillation against pruning, allocations, low rank; tables and plots (given code)."""
import copy
import functools
from collections.abc import Callable, Sequence

import numpy as np

from tinytorch.compression.iterative import IterativePruner, fine_tune, sparsity_schedule
from tinytorch.compression.prune import SensitivityScan, magnitude_prune, prunable_layers, sensitivity_scan
from tinytorch.compression.storage import compressed_size, prune_and_quantize
from tinytorch.compression.structured import structured_prune
from tinytorch.compression.surgery import remove_pruned_units
from tinytorch.compression.teacher import distill
from tinytorch.compression.lowrank import low_rank
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor
from tinytorch.core.files import write_figure
from tinytorch.core.training import evaluate
from tinytorch.profiling import blas_threads, time_interleaved
from tinytorch.recipes import DIGITS_MLP, DigitsRecipe, digits_loaders, digits_mlp

TEACHER = DIGITS_MLP
# The design target of the lesson's section 9.3, set from the measured comparison (seeds 0-2,
# 95% overall, under the OpenBLAS kernels Haswell, Prescott and SkylakeX): a sparse INT8 file
# of at most DESIGN_BYTES, on average at most DESIGN_DROP below the dense accuracy. The
# sensitivity allocation met it on every kernel (files of 1,454-1,815 bytes; 0.74 points lost
# under Haswell, 1.67 under the other two); global missed it on bytes (up to 2,036), uniform
# sat on its edge (1.95-2.04 points).
# NOTE: the kernel alone moved one seed's drop from 1.39 to 3.61 points, and the three-seed
# mean by 0.93 points: a test of the target allows KERNEL_NOISE, twice that spread, on top.
SCAN_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
DESIGN_SPARSITY, DESIGN_BYTES, DESIGN_DROP, KERNEL_NOISE = 0.95, 2000, 0.02, 0.019


def one_blas_thread(fn: Callable) -> Callable:
    """`fn`, run with NumPy's BLAS held to one thread (Module 14's `blas_threads`)."""
    # NOTE: these matrices are small; on a shared machine a multi-threaded BLAS waits for
    # its threads far longer than it computes (training ran 6x slower under load).
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with blas_threads(1):
            return fn(*args, **kwargs)
    return wrapper


def train(model: Module, loader, epochs: int = 25, lr: float = 3e-3, masks=None) -> Module:
    """Module 09's recipe (Adam at `lr` for `epochs`, cross-entropy) on `loader`, `masks` held; returns the model."""
    return DigitsRecipe(epochs=epochs, lr=lr).fit(model, loader, masks=masks).model


def nonzero_weights(model: Module) -> int:
    """Non-zero weights of the prunable layers (biases are not counted)."""
    return int(sum(np.count_nonzero(layer.weight.data) for _, layer in prunable_layers(model)))


def file_bytes(model: Module) -> int:
    """Bytes of the model's sparse INT8 file (per-tensor scale, int8 bias), as `save_compressed` writes it."""
    return compressed_size(prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True)).file_bytes


def latencies(models: Sequence[Module], batch: int = 256, repeats: int = 15) -> list[float]:
    """CPU seconds per forward pass of a batch of digits, each model timed in the same interleaved rounds."""
    x = Tensor(np.random.default_rng(0).random((batch, 64)))
    for m in models:
        m.eval()
    with no_grad():
        # CPU seconds on one BLAS thread: what an idle machine would show, blind to other programs' load
        return time_interleaved([lambda m=m: m(x) for m in models], repeats=repeats, clock="cpu")


def summarize(rows: list[dict], by: Sequence[str], values: Sequence[str]) -> list[dict]:
    """Mean and spread (sample std; 0 for one seed) of `values` over the rows sharing the keys `by`."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, group in groups.items():
        row = dict(zip(by, key), seeds=len(group))
        for v in values:
            data = np.array([g[v] for g in group], dtype=np.float64)
            row[v], row[v + "_sd"] = float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else 0.0
        out.append(row)
    return out


def table(summary: list[dict], by: Sequence[str], values: Sequence[str], percent: Sequence[str] = ()) -> str:
    """`summarize`'s rows as text: the keys `by`, then each value as mean ± spread (`percent` ones x100)."""
    def cell(row: dict, v: str) -> str:
        scale = 100.0 if v in percent else 1.0
        mean, sd = scale * row[v], scale * row[v + "_sd"]
        if np.isnan(mean):
            return "-"
        return f"{mean:.2f} ± {sd:.2f}" if v in percent else f"{mean:,.0f} ± {sd:,.0f}"

    def key(value) -> str:
        return f"{value:.0%}" if isinstance(value, float) else str(value)

    widths = [max(len(k), 11) for k in by] + [max(len(v), 15) for v in values]
    lines = ["".join(f"{h:>{w + 2}}" for h, w in zip([*by, *values], widths))]
    for row in summary:
        cells = [key(row[k]) for k in by] + [cell(row, v) for v in values]
        lines.append("".join(f"{c:>{w + 2}}" for c, w in zip(cells, widths)))
    return "\n".join(lines) + f"\n(mean ± sample standard deviation over {summary[0]['seeds']} seed(s); % where a percentage)"

# %% [markdown]
# **Lottery tickets.** For each seed: draw the network (its state is the rewind point),
# train it, keep its state after `late` epochs too. Then for each sparsity, the mask is
# that of the trained network pruned by magnitude, and four networks with that mask are
# trained for the same `epochs`: the ticket (survivors rewound to initialisation, with
# `IterativePruner(rewind_to=...)`), the same mask on freshly drawn weights, the late
# ticket (rewound to epoch `late`), and the trained network fine-tuned.

# %%
#| exporti compression.experiments
@one_blas_thread
def lottery_tickets(sparsities: Sequence[float], seeds: Sequence[int], epochs: int = 25,
                    late: int = 1, steps: int = 1) -> list[dict]:
    """Test accuracy of the four networks per seed and sparsity (see above); `steps` prune rounds."""
    rows = []
    for seed in seeds:
        train_loader, test = digits_loaders(seed)
        model = digits_mlp(seed=seed)
        initial = model.state_dict()
        opt = Adam(model.parameters(), lr=3e-3)
        fine_tune(model, opt, CrossEntropyLoss(), train_loader, late, progress=False)
        early = model.state_dict()
        fine_tune(model, opt, CrossEntropyLoss(), train_loader, epochs - late, progress=False)
        trained, dense = model.state_dict(), evaluate(model, test)
        for s in sparsities:
            row = {"seed": seed, "sparsity": s, "dense": dense}
            for arm, rewind in (("ticket", initial), ("late", early), ("finetuned", None)):
                model.load_state_dict(trained)
                loader = digits_loaders(seed)[0]  # every arm sees the same order of batches
                pruner = IterativePruner(s, steps, rewind_to=rewind)
                pruner.run(model, Adam(model.parameters(), lr=3e-3), CrossEntropyLoss(), loader,
                           epochs // steps if rewind is not None else 0)
                if rewind is None:  # same epochs from the trained weights
                    train(model, loader, epochs, lr=1e-3, masks=pruner.masks)
                row[arm] = evaluate(model, test)
                mask = pruner.masks if arm == "ticket" else mask
            fresh = digits_mlp(seed=seed + 1000)  # the ticket's mask on weights the pruning never saw
            for name, p in fresh.named_parameters():
                if name in mask:
                    p.data *= mask[name]
            row["random"] = evaluate(train(fresh, digits_loaders(seed)[0], epochs, masks=_masks_for(fresh, mask)), test)
            rows.append(row)
    return rows


def _masks_for(model: Module, masks):
    """The same keep-masks, attached to another model of the same shape."""
    from tinytorch.compression.prune import Masks

    return Masks(model, {name: masks[name] for name in masks})

# %% [markdown]
# **Distillation against pruning at equal non-zero weights.** The student's width is
# chosen by the caller; the teacher is pruned to the student's number of non-zero
# weights. `labels` and `epochs` set the regime: all 1,437 training images or a few,
# long or short training.

# %%
#| exporti compression.experiments
@one_blas_thread
def distill_vs_prune(student: Sequence[int], seeds: Sequence[int], epochs: int = 40, labels: int | None = None,
                     temperature: float = 4.0, alpha: float = 0.9, timing: bool = True) -> list[dict]:
    """Per seed, four networks with the student's non-zero weight count: accuracy, file bytes, latency.

    With `labels`, the networks trained on labels see only that many training images;
    the distilled ones see every training image but no label (alpha 1: the teacher,
    trained on all labels, is their only signal).
    """
    rows = []
    for seed in seeds:
        test = digits_loaders(seed)[1]
        teacher = train(digits_mlp(seed=seed), digits_loaders(seed)[0])  # the teacher always sees every label

        # NOTE: fresh loaders for every network, so each sees the same batches in the same order
        def full():
            return digits_loaders(seed)[0]

        def labeled():
            return digits_loaders(seed, labels)[0]

        kd_alpha = alpha if labels is None else 1.0
        nets = {"scratch": train(digits_mlp(student, seed + 1), labeled(), epochs)}
        small = nets["distilled"] = digits_mlp(student, seed + 1)
        distill(small, teacher, Adam(small.parameters(), lr=3e-3), full(), epochs, temperature, kd_alpha,
                progress=False)
        sparsity = 1.0 - nonzero_weights(small) / sum(layer.weight.size for _, layer in prunable_layers(teacher))
        for arm in ("pruned", "pruned+KD"):
            net = nets[arm] = copy.deepcopy(teacher)
            opt = Adam(net.parameters(), lr=1e-3)
            data = labeled() if arm == "pruned" else full()
            if arm == "pruned":
                pruner = IterativePruner(sparsity, steps=3)
                pruner.run(net, opt, CrossEntropyLoss(), data, max(1, epochs // 6))
                fine_tune(net, opt, CrossEntropyLoss(), data, epochs // 2, pruner.masks, progress=False)
            else:  # the same schedule, each fine-tuning step on the teacher's outputs
                for step in range(1, 4):
                    masks = magnitude_prune(net, sparsity_schedule(step, 3, sparsity))
                    distill(net, teacher, opt, data, max(1, epochs // 6), temperature, kd_alpha, masks,
                            progress=False)
                distill(net, teacher, opt, data, epochs // 2, temperature, kd_alpha, masks, progress=False)
        times = latencies(list(nets.values())) if timing else [float("nan")] * len(nets)
        for (arm, net), seconds in zip(nets.items(), times):
            rows.append({"seed": seed, "arm": arm, "accuracy": evaluate(net, test), "teacher": evaluate(teacher, test),
                         "nonzero": nonzero_weights(net), "bytes": file_bytes(net), "us": seconds * 1e6})
    return rows

# %% [markdown]
# **Low rank against pruning at equal weights** (going further). Each Linear of the
# trained teacher but the last is split at the rank that gives the weight budget; the
# magnitude-pruned and the structured-pruned (units removed) networks get the same
# budget; all three are fine-tuned the same.

# %%
#| exporti compression.experiments
def _low_rank_model(model: Sequential, fraction: float) -> Sequential:
    """Every Linear but the last replaced by its rank-r split holding about `fraction` of its weights."""
    layers: list[Module] = []
    linears = [i for i, m in enumerate(model) if isinstance(m, Linear)]
    for i, m in enumerate(model):
        if isinstance(m, Linear) and i != linears[-1]:
            r = max(1, round(fraction * m.in_features * m.out_features / (m.in_features + m.out_features)))
            layers += list(low_rank(m, rank=min(r, m.in_features, m.out_features)))
        else:
            layers.append(copy.deepcopy(m))
    return Sequential(*layers)


@one_blas_thread
def low_rank_vs_pruning(fractions: Sequence[float], seeds: Sequence[int], epochs: int = 10) -> list[dict]:
    """Accuracy before and after fine-tuning, weights, file bytes and latency of three ways to shrink."""
    rows = []
    for seed in seeds:
        loader, test = digits_loaders(seed)
        teacher = train(digits_mlp(seed=seed), loader)
        for f in fractions:
            lr_net = _low_rank_model(teacher, f)
            budget = nonzero_weights(lr_net)
            total = sum(layer.weight.size for _, layer in prunable_layers(teacher))
            nets, masks = {"low rank": lr_net}, {"low rank": None}
            nets["magnitude"] = copy.deepcopy(teacher)
            masks["magnitude"] = magnitude_prune(nets["magnitude"], 1.0 - budget / total)
            nets["structured"] = _structured_to_budget(teacher, budget)
            masks["structured"] = None
            for arm, net in nets.items():
                before = evaluate(net, test)
                train(net, digits_loaders(seed)[0], epochs, lr=1e-3, masks=masks[arm])  # same batches for each
                rows.append({"seed": seed, "fraction": f, "arm": arm, "before": before, "accuracy": evaluate(net, test),
                             "weights": nonzero_weights(net), "bytes": file_bytes(net), "us": 0.0})
            for row, seconds in zip(rows[-3:], latencies(list(nets.values()))):
                row["us"] = seconds * 1e6
    return rows


def _structured_to_budget(model: Sequential, budget: int) -> Sequential:
    """The model with whole hidden units removed until it has at most `budget` weights."""
    def smaller(ratio: float) -> Sequential:
        net = copy.deepcopy(model)
        return remove_pruned_units(net, structured_prune(net, ratio))

    lo, hi = 0.0, 0.99
    for _ in range(20):  # bisect the unit ratio: weights fall as it rises
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if nonzero_weights(smaller(mid)) > budget else (lo, mid)
    return smaller(hi)

# %% [markdown]
# **Sensitivity-driven allocation.** `allocate` takes an allocation rule (uniform,
# global, or the lesson's `allocate_sparsity` on the scan), prunes the trained network
# to it, fine-tunes with the masks held, and measures the file and the accuracy.

# %%
#| exporti compression.experiments
def layer_sizes(model: Module) -> dict[str, int]:
    """`{layer name: number of weights}` of the prunable layers, named as `sensitivity_scan` names them."""
    return {name: layer.weight.size for name, layer in prunable_layers(model)}


def compress_with(model: Module, allocation: dict[str, float] | float, loader, test, steps: int = 5,
                  epochs: int = 5, final: int = 10, lr: float = 5e-3) -> dict:
    """Prune a copy of `model` to `allocation` (per layer, or one global sparsity) with section 8's
    recipe: the cubic ramp in `steps` rounds of `epochs`, then `final` epochs, Adam at `lr`, masks held.

    Returns:
        `{"accuracy", "bytes" (sparse INT8 file), "sparsity", "model" (the pruned copy)}`.
    """
    net = copy.deepcopy(model)
    opt = Adam(net.parameters(), lr=lr)
    masks = None
    for k in range(1, steps + 1):
        ramp = sparsity_schedule(k, steps, 1.0 - 1e-9)  # the same cubic ramp as IterativePruner, per layer
        target = ({n: s * ramp for n, s in allocation.items()} if isinstance(allocation, dict)
                  else allocation * ramp)
        new = magnitude_prune(net, target)
        masks = new if masks is None else masks & new
        masks.apply()
        fine_tune(net, opt, CrossEntropyLoss(), loader, epochs, masks, progress=False)
    fine_tune(net, opt, CrossEntropyLoss(), loader, final, masks, progress=False)
    return {"accuracy": evaluate(net, test), "bytes": file_bytes(net), "sparsity": 1 - nonzero_weights(net) / sum(
        layer_sizes(net).values()), "model": net}


@one_blas_thread
def allocations_compared(allocate: Callable, overall: Sequence[float], seeds: Sequence[int],
                         scan_sparsities: Sequence[float] = SCAN_SPARSITIES,
                         epochs: int = 5, final: int = 10, rules: Sequence[str] = ("uniform", "global", "sensitivity"),
                         ) -> tuple[list[dict], dict[int, SensitivityScan]]:
    """Uniform, global and `allocate(scan, sizes, s)` ("sensitivity") at each overall sparsity, each
    pruned with `compress_with`: accuracy and bytes per seed and rule, and each seed's scan."""
    rows, scans = [], {}
    for seed in seeds:
        loader, test = digits_loaders(seed)
        model = train(digits_mlp(seed=seed), loader)
        dense = evaluate(model, test)
        scans[seed] = scan = sensitivity_scan(model, lambda m: evaluate(m, test), scan_sparsities)
        sizes = layer_sizes(model)
        for s in overall:
            choices = {"uniform": lambda: {n: s for n in sizes}, "global": lambda: s,
                       "sensitivity": lambda: allocate(scan, sizes, s)}
            for rule in rules:
                allocation = choices[rule]()
                # NOTE: a fresh loader per run: its shuffling order then depends on the seed
                # alone, not on how many epochs other runs drew from it before.
                result = compress_with(model, allocation, digits_loaders(seed)[0], test, epochs=epochs, final=final)
                rows.append({"seed": seed, "overall": s, "rule": rule, "dense": dense,
                             "accuracy": result["accuracy"], "bytes": result["bytes"],
                             "drop": dense - result["accuracy"]})
    return rows, scans

# %% [markdown]
# ### Plots

# %%
#| exporti compression.experiments
def _axes(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    return plt, fig, ax


def plot_lines(table: list[dict], x: str, lines: Sequence[str], path, title: str) -> None:
    """One line per key of `lines` (means with spread bars) against `x`, saved to `path` (PNG)."""
    plt, fig, ax = _axes(path)
    xs = [100 * r[x] for r in table]
    for key in lines:
        ax.errorbar(xs, [100 * r[key] for r in table], yerr=[100 * r[key + "_sd"] for r in table],
                    marker="o", capsize=3, label=key)
    if "dense" in table[0]:
        ax.axhline(100 * table[0]["dense"], color="gray", linestyle="--", label="dense")
    ax.set(xlabel=f"{x} (%)", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)


def plot_sensitivity(scan: SensitivityScan, path) -> None:
    """Accuracy against each layer's own sparsity (the others untouched), saved to `path` (PNG)."""
    plt, fig, ax = _axes(path)
    for layer in dict.fromkeys(row[0] for row in scan):
        points = sorted((s, score) for name, s, score in scan if name == layer)
        ax.plot([0] + [100 * s for s, _ in points], [100 * scan.baseline] + [100 * v for _, v in points],
                marker="o", label=f"layer {layer}")
    ax.set(xlabel="sparsity of this layer alone (%)", ylabel="test accuracy (%)",
           title="Digits MLP: per-layer sensitivity (no fine-tuning)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
