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
# # Module 14: Profiling
#
# > Measure before you optimise: parameters, FLOPs, bytes and latency of a model.
#
# Quantization (Module 15) and pruning (Module 16) promise smaller and faster models.
# Promises need numbers, and numbers need definitions. This module gives four
# measurements, each with its convention written down:
#
# | question | function | counts |
# |---|---|---|
# | how many weights? | `count_parameters(model)` | elements of every parameter |
# | how much arithmetic? | `count_flops(model, input_shape)` | floating-point operations of one forward pass |
# | how much memory? | `model_size_bytes(model)` | bytes of every array the model holds, at its real dtype |
# | how fast? | `measure_latency(model, x)` | median wall-clock seconds of one forward pass |
#
# They answer different questions. Pruning half the weights to zero halves nothing on
# this list by itself: the zeros are still stored (bytes), still multiplied (FLOPs as
# counted here, and real time). Only removing units, or a sparse format, changes them.
# Seeing that clearly is the point of measuring.

# %%
#| default_exp profiling.profiler

# %%
#| export
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_int, check_number, check_shape
from tinytorch.core.layers import Module
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, MaxPool2d
from tinytorch.core.tensor import Tensor

# %% [markdown]
# ## Parameters and bytes
#
# `count_parameters` adds up the sizes of `model.parameters()`: the trainable numbers.
#
# `model_size_bytes` asks a different question: how much memory do the model's arrays
# take? It reads `nbytes` of the real arrays, so float32 weights count 4 bytes each and
# int8 weights 1. Parameters *and* buffers count (BatchNorm's running statistics are
# needed at inference), as do other arrays a layer holds directly: a plain `ndarray`
# attribute, or any object with an `nbytes` attribute (Module 15's `QuantizedTensor`).
# Every array is counted once even if two layers share it. Gradients are not part of
# the model and are not counted.

# %% nbgrader={"grade": false, "grade_id": "sizes", "solution": true}
#| export
def count_parameters(model: Module) -> int:
    """The number of trainable values in `model` (each shared parameter once)."""
    return int(sum(p.data.size for p in model.parameters()))


def model_size_bytes(model: Module) -> int:
    """Bytes of every array `model` holds (parameters, buffers, other arrays), at their real dtypes.

    Task 14.1: walk `model.modules()` and each module's attributes; count a Tensor's
    `.data.nbytes`, an ndarray's `nbytes`, or another object's `nbytes`; each object once.
    """
    ### BEGIN SOLUTION
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, Module) or id(value) in seen:
                continue
            if isinstance(value, Tensor):
                seen.add(id(value))
                total += value.data.nbytes
            elif isinstance(getattr(value, "nbytes", None), (int, np.integer)):
                seen.add(id(value))
                total += int(value.nbytes)
    return int(total)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-sizes", "locked": true, "points": 2}
def test_unit_sizes():
    """Task 14.1"""
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d

    model = Sequential(Conv2d(1, 4, 3), BatchNorm2d(4), Linear(10, 3))
    assert count_parameters(model) == (4 * 9 + 4) + (4 + 4) + (30 + 3)
    # float32 everywhere: 4 bytes per parameter, plus the 2 * 4 running statistics.
    assert model_size_bytes(model) == 4 * (count_parameters(model) + 8)
    # Arrays held directly count at their dtype (int8: 1 byte), each object once.
    codes = np.zeros((3, 10), dtype=np.int8)
    model[2].codes, model[0].same_codes = codes, codes
    assert model_size_bytes(model) == 4 * (count_parameters(model) + 8) + 30


# %% [markdown]
# ## FLOPs: the convention
#
# A FLOP is one floating-point operation. Networks are mostly dot products, and a dot
# product of length `K` is `K` multiply-adds (the bias supplies the `K`-th add), so:
#
# **one multiply-add = 2 FLOPs.** (Some tools report multiply-adds, "MACs", instead:
# half of our number.)
#
# | layer | FLOPs for one forward pass |
# |---|---|
# | `Linear(in, out)` on `R` rows | `2 * R * in * out` |
# | `Conv2d` with weight `(O, C, kh, kw)`, output `(N, O, OH, OW)` | `2 * N * OH * OW * O * C * kh * kw` |
# | `MaxPool2d` / `AvgPool2d`, kernel `kh x kw`, output of `E` elements | `E * kh * kw` (one comparison or addition per window element) |
# | `BatchNorm2d` on `E` elements | `2 * E` (at inference it is one multiply-add per element) |
# | activations, `Flatten`, `Dropout` | 0 (cheap next to the above, and memory-bound) |
#
# Counts are for the whole `input_shape`, batch included, and for dense weights: a
# weight that is zero is still multiplied. Shapes are read from the weights themselves,
# so a layer Module 16 has made smaller is counted at its new size, and a layer that
# stores its weight as `qweight` (Module 15) is counted like its float original.
# A layer can also count itself with a method `flops(input_shape, output_shape)`.

# %% nbgrader={"grade": false, "grade_id": "layer-flops", "solution": true}
#| export
def _weight_shape(layer: Module) -> tuple[int, ...] | None:
    weight = getattr(layer, "weight", None)
    if weight is None:
        weight = getattr(layer, "qweight", None)
    return None if weight is None else tuple(weight.shape)


def layer_flops(layer: Module, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """FLOPs of one call of a leaf `layer` mapping `input_shape` to `output_shape` (multiply-add = 2).

    Task 14.2: apply the table above; a layer's own `flops` method wins; 0 for the rest.
    """
    if callable(getattr(layer, "flops", None)):
        return int(layer.flops(input_shape, output_shape))
    ### BEGIN SOLUTION
    out_elements = int(np.prod(output_shape))
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        kh, kw = layer.kernel_size
        return out_elements * kh * kw
    if isinstance(layer, BatchNorm2d):
        return 2 * int(np.prod(input_shape))
    shape = _weight_shape(layer)
    if shape is not None and len(shape) == 2:  # Linear: (out, in)
        return 2 * out_elements * shape[1]
    if shape is not None and len(shape) == 4:  # Conv2d: (O, C, kh, kw)
        return 2 * out_elements * shape[1] * shape[2] * shape[3]
    return 0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-layer-flops", "locked": true, "points": 2}
def test_unit_layer_flops():
    """Task 14.2"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear
    from tinytorch.core.spatial import Conv2d

    assert layer_flops(Linear(64, 10), (32, 64), (32, 10)) == 2 * 32 * 64 * 10
    assert layer_flops(Conv2d(3, 8, 3, padding=1), (2, 3, 5, 5), (2, 8, 5, 5)) == 2 * 2 * 25 * 8 * 27
    assert layer_flops(MaxPool2d(2), (2, 8, 4, 4), (2, 8, 2, 2)) == 2 * 8 * 4 * 4
    assert layer_flops(ReLU(), (2, 8), (2, 8)) == 0


# %% [markdown]
# ## FLOPs of a whole model: trace one forward pass
#
# Output shapes depend on strides, paddings and whatever a model does in its own
# `forward`, so instead of re-deriving them we **run** the model once on zeros of
# `input_shape` and record what each leaf layer (one without children) receives and
# returns. To record, we give each leaf, for the duration of the call, its own
# `forward` attribute that calls the original and notes the shapes; `Module.__call__`
# finds an instance attribute before the class's method. A `finally` block removes the
# wrappers, whatever happens. The pass runs in eval mode under `no_grad()`, and the
# model's mode is restored afterwards.
#
# A layer called twice is counted twice: FLOPs measure work done, not layers owned.

# %% nbgrader={"grade": false, "grade_id": "flops-by-layer", "solution": true}
#| export
def flops_by_layer(model: Module, input_shape: tuple[int, ...]) -> list[tuple[str, int]]:
    """`(layer name, FLOPs)` for every leaf-layer call of one forward pass on `input_shape`, in call order.

    Task 14.3: wrap each leaf's `forward` to record shapes, run the model on zeros in
    eval mode under `no_grad`, always remove the wrappers and restore the mode.

    Raises:
        ValueError: `input_shape` is not a tuple of positive ints.
    """
    shape = check_shape("input_shape", input_shape, " (batch first)")
    was_training = model.training
    calls: list[tuple[str, int]] = []
    wrapped: list[Module] = []
    ### BEGIN SOLUTION
    def recorder(name: str, layer: Module, forward: Any) -> Any:
        def forward_and_count(x: Any, *args: Any, **kwargs: Any) -> Any:
            out = forward(x, *args, **kwargs)
            calls.append((name, layer_flops(layer, tuple(x.shape), tuple(out.shape))))
            return out
        return forward_and_count

    try:
        for name, layer in model.named_modules():
            if not layer.children() and "forward" not in vars(layer):
                layer.forward = recorder(name or type(layer).__name__, layer, layer.forward)
                wrapped.append(layer)
        model.eval()
        with no_grad():
            model(Tensor(np.zeros(shape, dtype=np.float32)))
    finally:
        for layer in wrapped:
            del layer.forward
        model.train(was_training)
    ### END SOLUTION
    return calls


def count_flops(model: Module, input_shape: tuple[int, ...]) -> int:
    """Total FLOPs of one forward pass of `model` on an input of `input_shape` (batch first; multiply-add = 2)."""
    return int(sum(flops for _, flops in flops_by_layer(model, input_shape)))


# %% nbgrader={"grade": true, "grade_id": "test-flops-by-layer", "locked": true, "points": 3}
def test_unit_count_flops():
    """Task 14.3"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten

    model = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(8 * 4 * 4, 10))
    model.train()
    by_layer = dict(flops_by_layer(model, (1, 1, 8, 8)))
    conv = 2 * (8 * 8) * 8 * (1 * 3 * 3)  # 2 * output pixels * filters * weights per filter
    pool = (8 * 4 * 4) * 4
    linear = 2 * 128 * 10
    assert by_layer == {"0": conv, "1": 0, "2": pool, "3": 0, "4": linear}, by_layer
    assert count_flops(model, (5, 1, 8, 8)) == 5 * (conv + pool + linear)
    assert model.training and "forward" not in vars(model[0]), "mode and forward must be restored"


# %% [markdown]
# ## Latency
#
# Wall-clock time is noisy: the first calls warm caches and allocators, and other
# programs steal the CPU now and then. So `measure_latency`:
#
# 1. switches to eval mode and `no_grad()` (inference, as it would be deployed);
# 2. runs `warmup` untimed calls;
# 3. times `repeats` calls one by one with `time.perf_counter` and returns the
#    **median**, which one slow outlier cannot move (a mean can).
#
# `# NOTE:` compare latencies only when measured in the same process on the same
# machine, close together in time; absolute numbers from different runs mean little.

# %% nbgrader={"grade": false, "grade_id": "latency", "solution": true}
#| export
def measure_latency(model: Module, x: Tensor | np.ndarray, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall-clock seconds of `model(x)` over `repeats` timed calls, in eval mode under `no_grad`.

    Task 14.4: warm up, time each call, return the median; restore the model's mode.

    Args:
        model: the network to time.
        x: one input batch (a Tensor or an array).
        warmup: untimed calls first, >= 0.
        repeats: timed calls, >= 1.

    Raises:
        ValueError: `warmup` < 0 or `repeats` < 1.
    """
    warmup, repeats = check_int("warmup", warmup, 0), check_int("repeats", repeats, 1)
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))
    was_training = model.training
    ### BEGIN SOLUTION
    times = []
    model.eval()
    try:
        with no_grad():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return float(np.median(times))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-latency", "locked": true, "points": 2}
def test_unit_latency():
    """Task 14.4"""
    from tinytorch.core.layers import Linear

    class Recorder(Linear):
        def forward(self, x):
            self.calls.append((self.training, x.requires_grad))
            return super().forward(x)

    layer = Recorder(4, 2)
    layer.calls = []
    seconds = measure_latency(layer, np.ones((3, 4)), warmup=2, repeats=5)
    assert 0 < seconds < 1.0
    assert len(layer.calls) == 7 and all(mode is False for mode, _ in layer.calls)
    assert layer.training, "measure_latency must restore the mode"


# %% [markdown]
# ## Demo: profiling the course's small CNN
#
# The digits CNN of Module 09, profiled for one image and for a batch of 64.

# %% [markdown]
# ## Comparing two timings fairly
#
# One latency on a shared machine is noisy: another program's burst lands on one call
# and not the next. To compare two versions of a model, time them *in turns*: each round
# times every function once, in a rotated order, so a burst falls on all of them alike,
# and the median over rounds drops it. Every later module (the pruned-vs-dense
# comparisons of Module 16, the sparse kernels of Module 18, the benchmarks of Module 19)
# times with this one function. It is given code: read it, there is nothing to write.
#
# `time_rounds` gives each function's rounds as a `Timing`: the median to report, the
# minimum, and the spread (how far the rounds disagree). It holds NumPy's BLAS to one
# thread: on a shared machine a multi-threaded BLAS spends longer waiting for its
# threads than computing, and times would measure the load. `compare_timings` turns two
# timings into a `Speedup` and flags it when it cannot be trusted: rounds that disagree,
# or a speedup beyond the ratio of the work (FLOPs or bytes) by a clear margin. A layer
# that does 4x fewer FLOPs and runs 9x faster has not been sped up by its FLOPs;
# something in the measurement is wrong until proven otherwise. `time_interleaved`
# keeps the short form: the medians alone.
#
# Some calls use up what they work on: pruning zeros the model it is given, saving
# may need a fresh file. For these `time_rounds` takes a `setup`: it runs before every
# call, off the clock, and the timed function receives what it returned, so each call
# starts from the same state and only the work itself is timed.

# %%
#| export
import contextlib
import gc
from dataclasses import dataclass

_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# Rounds whose range exceeds half their median disagree: the machine's load changed
# under the measurement, and a ratio built on it may be off by as much.
NOISY_SPREAD = 0.5
# A speedup beyond the ratio of the work (FLOPs or bytes) by more than this factor is
# flagged: less work cannot explain it, so the timing has to.
PLAUSIBLE_MARGIN = 1.5
# What `time_rounds` runs off the clock before each call: one callable for every
# function, or one entry (a callable or None) per function.
Setup = Callable[[], object] | Sequence[Callable[[], object] | None] | None


def format_seconds(seconds: float) -> str:
    """`1.23 ms`, `45.6 us`, `2.10 s`: seconds in the unit that reads best."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one function, one value per interleaved round."""

    rounds: tuple[float, ...]

    @property
    def min(self) -> float:
        """The fastest round: load only ever adds time."""
        return min(self.rounds)

    @property
    def median(self) -> float:
        """The middle round: the figure to report and to form ratios from."""
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """(slowest - fastest round) / median: 0.1 means the rounds agree within 10%."""
        return (max(self.rounds) - self.min) / self.median if self.median > 0 else 0.0

    @property
    def steady(self) -> bool:
        """Whether the rounds agree (spread <= NOISY_SPREAD)."""
        return self.spread <= NOISY_SPREAD

    def __str__(self) -> str:
        return f"{format_seconds(self.median)} (min {format_seconds(self.min)}, spread {self.spread:.0%})"


@dataclass(frozen=True)
class Speedup:
    """How many times faster `after` ran than `before`, and whether the timing can be trusted."""

    ratio: float
    low: float
    high: float
    work_ratio: float | None = None
    flags: tuple[str, ...] = ()

    @property
    def plausible(self) -> bool:
        """False when the speedup beats its work ratio by a clear margin or the rounds disagree."""
        return not self.flags

    def __str__(self) -> str:
        text = f"{self.ratio:.2f}x (rounds {self.low:.2f}-{self.high:.2f}x)"
        return text + "".join(f"  [!] {flag}" for flag in self.flags)


def compare_timings(before: Timing, after: Timing, work_ratio: float | None = None,
                    margin: float = PLAUSIBLE_MARGIN) -> Speedup:
    """`before`'s time over `after`'s, round by round, flagged when it is implausible.

    Args:
        before, after: timings of the same interleaved rounds (`time_rounds`).
        work_ratio: how many times less work (FLOPs or bytes, whichever bounds the
            code) `after` does; a speedup above `work_ratio * margin` is flagged.
        margin: the tolerance of that check, > 1.

    Raises:
        ValueError: the timings hold different numbers of rounds, a bad `work_ratio` or `margin`.
    """
    if len(before.rounds) != len(after.rounds):
        raise ValueError(f"before and after must time the same rounds, got {len(before.rounds)} and "
                         f"{len(after.rounds)}")
    if work_ratio is not None:
        check_number("work_ratio", work_ratio, 0, low_open=True, note=" or None")
    check_number("margin", margin, 1, low_open=True)
    per_round = [b / a for b, a in zip(before.rounds, after.rounds)]
    ratio = statistics.median(per_round)
    flags = []
    if work_ratio is not None and ratio > work_ratio * margin:
        flags.append(f"{ratio:.2f}x faster for {work_ratio:.2f}x less work: check the measurement")
    noisy = [f"{name} {t.spread:.0%}" for name, t in (("before", before), ("after", after)) if not t.steady]
    if noisy:
        flags.append(f"rounds disagree (spread {', '.join(noisy)})")
    return Speedup(ratio, min(per_round), max(per_round), work_ratio, tuple(flags))


@contextlib.contextmanager
def blas_threads(threads: int | None):
    """Hold NumPy's BLAS to `threads` threads inside the block (None: leave it as it is)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        yield


def _check_timing_args(repeats: object, warmup: object, min_time: object, clock: object,
                       number: object, threads: object) -> Callable[[], float]:
    check_int("repeats", repeats, 1), check_int("warmup", warmup, 0)
    check_int("number", number, 1, allow_none=True), check_int("threads", threads, 1, allow_none=True)
    check_number("min_time", min_time, 0, low_open=True, note=" (seconds)")
    if callable(clock):
        return clock
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r} (or a function returning seconds)")
    return _CLOCKS[clock]


def time_rounds(fns: Sequence[Callable[..., object]], repeats: int = 7, warmup: int = 1,
                min_time: float = 2e-3, clock: str | Callable[[], float] = "wall", number: int | None = None,
                threads: int | None = 1, setup: Setup = None) -> list[Timing]:
    """Seconds per call of each function in `fns`, one value per interleaved round.

    Each round times every function once, in an order rotated from round to round, and
    each timing repeats its call until about `min_time` has passed (or exactly `number`
    times). A burst of load from other programs then falls on all functions alike, and
    the median over rounds drops the bursts: the ratio of two results is much steadier
    than either time alone. NumPy's BLAS is held to `threads` threads, and garbage
    collection is paused, so neither a thread pool waiting on a busy machine nor a
    collection is charged to whichever call it hits.

    Args:
        fns: callables without arguments (with a `setup`: of its result).
        repeats: timed rounds, >= 1.
        warmup: untimed rounds first (rotated like the timed ones), >= 0.
        min_time: seconds each timing lasts at least, > 0 (ignored with `number`).
        clock: "wall" (elapsed time, `time.perf_counter`: the latency), "cpu" (CPU
            seconds of this process, `time.process_time`: on one thread, the latency
            an idle machine would show), or a function returning seconds.
        number: calls per timing, or None to choose them from `min_time`.
        threads: BLAS threads while timing, or None to leave the setting alone.
        setup: None, or a callable run off the clock before every call (warm-up,
            counting and timed calls alike), whose result the timed function gets as
            its one argument: `fn(setup())`, with only `fn` timed. One callable for
            all of `fns`, or a sequence with one entry (a callable or None) per function.
            Each call is then timed on its own and the times added up, so the call
            should last well beyond the clock's resolution.

    Returns:
        One `Timing` per function, in the order of `fns`.

    Raises:
        ValueError: a count out of range, `min_time` <= 0, an unknown clock or a `setup`
            that is neither None, a callable nor one entry per function.
    """
    clock = _check_timing_args(repeats, warmup, min_time, clock, number, threads)
    n = len(fns)
    setups = _check_setups(setup, n)
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()  # NOTE: a collection inside a timed call would be charged to that function
    try:
        with blas_threads(threads):
            for r in range(warmup):
                for k in range(n):
                    _timed_calls(fns[(k + r) % n], setups[(k + r) % n], 1, clock)
            calls = [number] * n if number is not None else [_calls_filling(fn, s, min_time, clock)
                                                             for fn, s in zip(fns, setups)]
            times: list[list[float]] = [[] for _ in fns]
            for r in range(warmup, warmup + repeats):
                for k in range(n):
                    i = (k + r) % n
                    times[i].append(_timed_calls(fns[i], setups[i], calls[i], clock) / calls[i])
    finally:
        if collecting:
            gc.enable()
    return [Timing(tuple(t)) for t in times]


def _check_setups(setup: Setup, n: int) -> list[Callable[[], object] | None]:
    """`setup` as one entry (a callable or None) per function."""
    if setup is None or callable(setup):
        return [setup] * n
    if isinstance(setup, (list, tuple)) and len(setup) == n and all(s is None or callable(s) for s in setup):
        return list(setup)
    raise ValueError(f"setup must be None, a callable or a sequence of {n} callables or None (one per "
                     f"function), got {setup!r}")


def _timed_calls(fn: Callable[..., object], setup: Callable[[], object] | None, calls: int,
                 clock: Callable[[], float]) -> float:
    """Seconds that `calls` calls of `fn` take; a setup runs before each call, off the clock."""
    if setup is None:
        start = clock()
        for _ in range(calls):
            fn()
        return clock() - start
    total = 0.0
    for _ in range(calls):
        arg = setup()
        start = clock()
        fn(arg)
        total += clock() - start
    return total


def _calls_filling(fn: Callable[..., object], setup: Callable[[], object] | None, min_time: float,
                   clock: Callable[[], float]) -> int:
    """How many calls of `fn` last at least `min_time` (the counting calls warm it up too)."""
    spent, n = 0.0, 0
    while spent < min_time:
        spent += _timed_calls(fn, setup, 1, clock)
        n += 1
    return n


def time_interleaved(fns: Sequence[Callable[[], object]], repeats: int = 7, warmup: int = 1,
                     min_time: float = 2e-3, clock: str = "wall") -> list[float]:
    """Median seconds per call of each function in `fns`: `time_rounds`' medians, one BLAS thread.

    Raises:
        ValueError: `repeats` < 1, `warmup` < 0, `min_time` <= 0 or an unknown clock.
    """
    return [t.median for t in time_rounds(fns, repeats, warmup, min_time, clock)]


# %%
def demo_profile():
    from tinytorch.recipes import digits_cnn

    model = digits_cnn(seed=None)  # the course's digits CNN (Module 09's given builder)
    x = np.zeros((64, 1, 8, 8), dtype=np.float32)
    print(f"parameters {count_parameters(model)}, {model_size_bytes(model)} bytes")
    for name, flops in flops_by_layer(model, (1, 1, 8, 8)):
        print(f"  layer {name}: {flops} FLOPs per image")
    print(f"latency, batch of 64: {measure_latency(model, x) * 1e3:.3f} ms")
    return model


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_sizes()
    test_unit_layer_flops()
    test_unit_count_flops()
    test_unit_latency()
    assert count_parameters(demo_profile()) == 80 + 1168 + 650


# %%
if __name__ == "__main__":
    test_module()
    print("Module 14: all inline tests passed")
