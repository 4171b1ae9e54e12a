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
# # Module 18, given code: backends, plumbing and the measuring tools
#
# This file is part of Module 18 but holds no task. `tito export 18` exports it with the
# lesson:
#
# - `tinytorch/acceleration/backends.py`: the bookkeeping behind `SparseLinear` and
#   `to_sparse`: which CSR kernels exist on this machine (scipy's compiled ones, or the
#   NumPy product you write in the lesson), finding the Linear layers of a model by name,
#   putting a new layer where an old one was, and `SparseChoice` and
#   `crossover_sparsity`, the record of one dense-vs-CSR measurement and the sparsity
#   from which CSR stays faster.
# - `tinytorch/acceleration/layers.py`: `compare_layer_times`, which times two models
#   with the same layers side by side, one layer at a time, and `LayerTime`, its rows.
#
# The lesson uses and reads both; you need not write them.

# %%
#| default_exp acceleration.backends

# %%
#| export
from __future__ import annotations
"""Sparse backends (NumPy or SciPy), finding and swapping a model's Linear layers, and the dense-vs-CSR timing choice (Module 18, given code)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinytorch.core.checks import check_instance
from tinytorch.core.layers import Linear, Module

try:  # scipy is the optional extra `tinytorch[sparse]`; without it the NumPy path runs
    import scipy.sparse as scipy_sparse
except ImportError:  # pragma: no cover - depends on what is installed
    scipy_sparse = None

BACKENDS = ("scipy", "numpy")


def default_backend() -> str:
    """`"scipy"` when scipy is installed (`pip install tinytorch[sparse]`), else `"numpy"`."""
    return "numpy" if scipy_sparse is None else "scipy"


@dataclass(frozen=True)
class SparseChoice:
    """One Linear layer: its sparsity and, if it was timed, dense and CSR seconds per call."""

    name: str
    shape: tuple[int, int]
    sparsity: float
    dense_seconds: float | None = None
    sparse_seconds: float | None = None

    @property
    def use_sparse(self) -> bool:
        """Whether the CSR layer was measured faster."""
        return self.sparse_seconds is not None and self.sparse_seconds < self.dense_seconds

    @property
    def speedup(self) -> float | None:
        """Dense time / CSR time (None when not timed)."""
        return None if self.sparse_seconds is None else self.dense_seconds / self.sparse_seconds


def crossover_sparsity(sparsities: Sequence[float], dense_seconds: Sequence[float],
                       sparse_seconds: Sequence[float]) -> float | None:
    """The sparsity from which CSR stays faster than dense, interpolated between measured points.

    The answer is the lowest measured sparsity at which CSR wins there and at every
    higher one, moved back towards the last losing point where log(sparse / dense)
    crosses 0 on the straight line between the two. It is the lowest sparsity measured
    when CSR wins everywhere, and None when CSR loses at the highest.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    if not len(sparsities) == len(dense_seconds) == len(sparse_seconds) > 0:
        raise ValueError(f"need one dense and one sparse time per sparsity, got {len(sparsities)} sparsities, "
                         f"{len(dense_seconds)} dense and {len(sparse_seconds)} sparse times")
    points = sorted(zip(sparsities, np.log(np.asarray(sparse_seconds) / np.asarray(dense_seconds))))
    first = len(points)
    while first > 0 and points[first - 1][1] < 0:
        first -= 1
    if first == len(points):
        return None
    if first == 0:
        return float(points[0][0])
    (s0, r0), (s1, r1) = points[first - 1], points[first]
    return float(s0 + (s1 - s0) * r0 / (r0 - r1))


# %% [markdown]
# Shared with the lesson's `sparse.py`, no names for users: `#| exporti` keeps them out of `__all__`.

# %%
#| exporti
def check_backend(backend: str | None) -> str:
    """The backend to use for `backend` (None: the default), or a ValueError naming the choices."""
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "scipy" and scipy_sparse is None:
        raise ValueError("backend 'scipy' needs scipy (pip install tinytorch[sparse]); use backend='numpy'")
    return backend


def linear_layers(model: Module) -> list[tuple[str, Linear]]:
    """Every Linear of `model` with its dotted name, as `named_modules` gives it."""
    check_instance("model", model, Module, "a tinytorch Module")
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]


def swap_module(root: Module, name: str, new: Module) -> None:
    """Put `new` where the sub-module `name` (dotted, as `named_modules` gives it) is."""
    *path, last = name.split(".")
    parent = root
    for part in path:
        parent = parent[int(part)] if isinstance(parent, list) else getattr(parent, part)
    if isinstance(parent, list):
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


# %%
#| export acceleration.layers
"""Layer-by-layer timing of two models with the same layer sequence, beside each layer's FLOP ratio (Module 18, given code)."""
from dataclasses import dataclass

import numpy as np

from tinytorch.acceleration.roofline import layer_bytes
from tinytorch.compression import sequential_layers
from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_instance
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import Speedup, Timing, compare_timings, layer_flops, time_rounds


@dataclass(frozen=True)
class LayerTime:
    """One position of two models run side by side: the layer's seconds per call and FLOPs in each.

    `before` and `after` hold the rounds behind the seconds (their spread), and
    `work_ratio` the larger of the layer's FLOP and byte ratios: less work of either
    kind cannot explain a speedup beyond it (`check`).
    """

    name: str
    kind: str
    before_seconds: float
    after_seconds: float
    before_flops: int
    after_flops: int
    before: Timing | None = None
    after: Timing | None = None
    work_ratio: float | None = None

    @property
    def speedup(self) -> float:
        """Seconds before / seconds after."""
        return self.before_seconds / self.after_seconds

    @property
    def flop_ratio(self) -> float | None:
        """FLOPs before / FLOPs after; None for a layer that counts no FLOPs after."""
        return self.before_flops / self.after_flops if self.after_flops else None

    @property
    def check(self) -> Speedup | None:
        """The speedup round by round, flagged when implausible (None without the rounds)."""
        if self.before is None or self.after is None:
            return None
        return compare_timings(self.before, self.after, self.work_ratio)


def _check_same_layers(first: list, second: list) -> None:
    if len(first) != len(second):
        raise ValueError(f"before has {len(first)} layers and after has {len(second)}: "
                         "compare_layer_times needs the same layers in the same order")
    for (name, a), (_, b) in zip(first, second):
        if type(a) is not type(b):
            raise ValueError(f"layer {name!r} is a {type(a).__name__} in before but a {type(b).__name__} "
                             "in after: compare_layer_times needs the same layers in the same order")


def _work_ratio(a: Module, b: Module, shapes_a: tuple, shapes_b: tuple) -> float:
    flops = layer_flops(a, *shapes_a), layer_flops(b, *shapes_b)
    nbytes = layer_bytes(a, *shapes_a), layer_bytes(b, *shapes_b)
    return max(nbytes[0] / nbytes[1], flops[0] / flops[1] if flops[1] else 0.0)


def compare_layer_times(before: Module, after: Module, x: Tensor | np.ndarray, repeats: int = 7,
                        clock: str = "cpu") -> list[LayerTime]:
    """Time every layer of two models with the same layer sequence, side by side.

    Both models run on `x` one layer at a time, under `no_grad` and in their current
    mode (call `eval()` first to time inference); each layer gets its own model's
    activations. Layer i of both models is timed in the same interleaved rounds
    (Module 14's `time_rounds`, one BLAS thread), so each ratio is as steady as a
    whole-model one.

    Args:
        before, after: Sequentials (nested ones are opened up) with the same kinds of
            layer in the same order, e.g. a masked model and `remove_pruned_units` of it.
        x: one input batch for both.
        repeats: timing rounds.
        clock: as in `time_rounds`; "cpu" (the default) is the latency on one thread.

    Returns:
        One `LayerTime` per layer, in the order they run.

    Raises:
        TypeError: `before` or `after` is not a Module.
        ValueError: the two layer sequences differ in length or in a layer's kind.
    """
    for arg, model in (("before", before), ("after", after)):
        check_instance(arg, model, Module, "a tinytorch Module")
    first, second = sequential_layers(before), sequential_layers(after)
    _check_same_layers(first, second)
    x_before = x_after = x if isinstance(x, Tensor) else Tensor(x)
    rows = []
    with no_grad():
        for (name, a), (_, b) in zip(first, second):
            out_a, out_b = a(x_before), b(x_after)
            t_a, t_b = time_rounds([lambda a=a, h=x_before: a(h), lambda b=b, h=x_after: b(h)],
                                   repeats=repeats, clock=clock)
            shapes_a, shapes_b = (x_before.shape, out_a.shape), (x_after.shape, out_b.shape)
            rows.append(LayerTime(name, type(a).__name__, t_a.median, t_b.median, layer_flops(a, *shapes_a),
                                  layer_flops(b, *shapes_b), t_a, t_b, _work_ratio(a, b, shapes_a, shapes_b)))
            x_before, x_after = out_a, out_b
    return rows
