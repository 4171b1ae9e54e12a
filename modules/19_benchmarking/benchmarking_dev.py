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
# # Module 19: Benchmarking
#
# > Compare model variants fairly: accuracy, latency with its spread, real bytes, parameters and FLOPs, in one table.
#
# Module 16 left us with several versions of one trained network: pruned, pruned to
# whole units, quantized to INT8, pruned *and* quantized. Each claims to be smaller,
# faster, or both, at some cost in accuracy. This module turns those claims into one
# table you can trust, and teaches the measuring that makes it trustworthy:
#
# 1. **Timing is noisy.** Warm up first, repeat, report the median and its spread
#    (the interquartile range), not one number and not the mean.
# 2. **Interleave, then take ratios.** A shared machine's load drifts. Time the models
#    in turn, round after round, and compare them round by round: the ratio measured
#    inside one run survives noise that absolute times do not.
# 3. **Count honest bytes.** A float model is stored as float32 arrays; a compressed
#    model as the file `save_compressed` writes. Zeros in a float array cost as much as
#    any other number.
# 4. **No single winner.** The Pareto front keeps every variant that no other beats on
#    both accuracy and cost.
#
# ### What a fair comparison holds fixed
#
# Same inputs and labels, same batch size, same machine *and the same minutes on it*,
# same number of threads, evaluation mode without gradient recording, the same warm-up
# and number of repeats for every model, and the same training budget for every
# variant (each pruned variant gets the same fine-tuning epochs). Change one of these
# between two models and the table measures that change, not the models.
#
# The library does the work: Module 14 counts parameters and FLOPs, Modules 15 and 16
# build and size the variants. This module imports them as any user would, through
# `tinytorch.profiling`, `tinytorch.quantization` and `tinytorch.compression`.
#
# It writes three files of `tinytorch.benchmarking`, and each code cell below says
# which: `timing.py` (sections 1-2), `benchmark.py` (sections 3-5: bytes, the Pareto
# front, the `Benchmark` runner and its table) and `variants.py` (section 6). Their
# import cells open section 1, before this lesson defines the names they bring in.

# %%
#| default_exp benchmarking.benchmark

# %%
#| export
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytorch.compression import CompressedModel, compressed_size
from tinytorch.core.checks import check_instance, check_int
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import evaluate
from tinytorch.data.loader import DataLoader, TensorDataset
from tinytorch.profiling import Speedup, Timing, compare_timings, count_flops, model_size_bytes
from tinytorch.quantization import QuantizedLayer

# %% [markdown]
# ## 1. Timing is noisy: warm up, repeat, take the median
#
# Call the same model on the same batch twenty times and you get twenty different
# times. Some of the reasons:
#
# - **First calls are slow.** Memory is allocated for the first time, the BLAS library
#   starts its threads, caches are cold. A few untimed *warm-up* calls absorb this.
# - **The machine is shared.** Other processes (other users, the test runner, the
#   browser) take the CPU for milliseconds at a time. On a 2-core machine one busy
#   neighbour can double a measurement.
# - **The garbage collector** can run in the middle of a timed call. `timeit` switches
#   it off while timing; so do we.
# - **Frequency scaling**: a CPU speeds up and slows down with load and temperature.
#
# Noise only ever adds time, so the distribution of timings has a long right tail. The
# **mean** follows the tail: one call ten times slower than nineteen others moves the
# mean of twenty by 45%. The **median** does not move at all. We report the median and,
# as its spread, the **interquartile range** (IQR): the width of the middle half of the
# timings, from the 25th percentile (q1) to the 75th (q3). A wide IQR says "this number
# is shaky"; a narrow one says it is repeatable. The minimum is also kept: it is the
# best the code can do, but it hides how often you get it.

# %%
#| export benchmarking.timing
"""Timing models fairly: statistics of repeated timings, interleaved rounds and paired speed-ups (Module 19, sections 1-2)."""
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Module
from tinytorch.core.checks import check_instance, check_int
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import time_rounds

# %%
#| export
from tinytorch.benchmarking.timing import (LatencyStats, check_models, interleaved_latency,
                                           latency_stats, paired_speedup)

# %%
#| export benchmarking.variants
"""The standard variants of a trained model, built with Modules 15 and 16: baseline, pruned, structured, int8, pruned+int8 (Module 19, section 6)."""
import copy
from collections.abc import Callable, Iterable

from tinytorch.compression import fine_tune, magnitude_prune, prune_and_quantize, remove_pruned_units, structured_prune
from tinytorch.core.checks import check_instance, check_int
from tinytorch.core.layers import Module
from tinytorch.core.optimizers import Adam

# %% nbgrader={"grade": false, "grade_id": "latency-stats", "solution": true}
#| export benchmarking.timing
@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings, in seconds."""

    median: float
    q1: float
    q3: float
    mean: float
    best: float

    @property
    def iqr(self) -> float:
        """The interquartile range q3 - q1: the spread of the middle half."""
        return self.q3 - self.q1


def latency_stats(times: Sequence[float] | np.ndarray) -> LatencyStats:
    """Median, quartiles, mean and minimum of repeated timings (seconds).

    Task 19.1: the quartiles and median with `np.percentile` (its default, linear
    interpolation), the mean and the minimum, as Python floats.

    Raises:
        ValueError: `times` is empty, or holds a negative or non-finite value.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("times must hold at least one timing, got none")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"times must be finite and >= 0 seconds, got {t[~np.isfinite(t) | (t < 0)][:3]}")
    ### BEGIN SOLUTION
    q1, median, q3 = np.percentile(t, [25, 50, 75])
    return LatencyStats(median=float(median), q1=float(q1), q3=float(q3), mean=float(t.mean()), best=float(t.min()))
    ### END SOLUTION


# %%
# Nineteen calls of 10 ms and one of 100 ms (the machine was busy for a moment):
_demo = latency_stats([0.010] * 19 + [0.100])
print(f"median {_demo.median * 1e3:.1f} ms, mean {_demo.mean * 1e3:.1f} ms, IQR {_demo.iqr * 1e3:.1f} ms")


# %% nbgrader={"grade": true, "grade_id": "test-latency-stats", "locked": true, "points": 2}
def test_unit_latency_stats():
    """Task 19.1"""
    stats = latency_stats([4.0, 1.0, 3.0, 2.0])
    # np.percentile's linear interpolation on 1, 2, 3, 4: q1 = 1.75, median 2.5, q3 = 3.25.
    assert (stats.q1, stats.median, stats.q3, stats.mean, stats.best) == (1.75, 2.5, 3.25, 2.5, 1.0)
    assert stats.iqr == 1.5
    spiky = latency_stats([0.010] * 19 + [0.100])
    assert spiky.median == 0.010 and abs(spiky.mean - 0.0145) < 1e-12  # the outlier moves only the mean
    for bad in ([], [1.0, -1.0], [float("nan")]):
        try:
            latency_stats(bad)
        except ValueError:
            continue
        raise AssertionError(f"latency_stats({bad}) should raise ValueError")


# %% [markdown]
# ## 2. Interleave the models, then compare ratios
#
# Load on a shared machine drifts over seconds and minutes. Time model A for ten
# seconds, then model B for ten seconds, and you compare A-under-one-load with
# B-under-another: the difference may be the neighbour's compile job, not the models.
#
# The cure is to **interleave**: in each round, time every model once, one after the
# other, so all models see nearly the same load. We also rotate the order from round to
# round (for two models: A B, B A, A B, ...) so that no model always runs first, right
# after the other has filled the caches with its weights.
#
# Interleaving pays off fully when we compare **within a round**: the ratio
# `t_A / t_B` of one round cancels whatever load that round had. The median of the
# per-round ratios is the speed-up. Absolute milliseconds measured today on this
# machine say little about tomorrow on another; "B is 3.1 times faster than A, measured
# side by side" travels much better. That is why the table reports speed-ups against a
# reference model measured in the same run.
#
# The rounds themselves are Module 14's `time_rounds`, the one timer of the course: it
# rotates the order, runs untimed warm-up rounds first, holds NumPy's BLAS to one
# thread and pauses garbage collection while it times. Your part is what makes it a
# fair *model* benchmark: every model in eval mode, no graph recorded, one call per
# timing (a model call is long enough to time alone), and each model's mode restored
# afterwards, even when a model fails. `timer` is the clock (`time.perf_counter`, the
# highest-resolution clock Python has); tests pass a fake one to check the bookkeeping
# without waiting for real time.

# %%
#| exporti benchmarking.timing
def check_models(models: object) -> dict[str, Module]:
    """A plain dict copy of `{name: Module}`, at least one model; refuses anything else, naming it."""
    check_instance("models", models, Mapping, "a dict of name -> Module")
    if not models:
        raise ValueError("models must hold at least one model, got an empty dict")
    for name, model in models.items():
        check_instance(f"models[{name!r}]", model, Module, "a tinytorch Module")
    return dict(models)

# %% nbgrader={"grade": false, "grade_id": "interleaved-latency", "solution": true}
#| export benchmarking.timing
def interleaved_latency(models: Mapping[str, Module], x: Tensor | np.ndarray, repeats: int = 20,
                        warmup: int = 3, timer: Callable[[], float] = time.perf_counter) -> dict[str, np.ndarray]:
    """Seconds of each `model(x)` call, the models interleaved round by round, in eval mode without grad.

    Task 19.2: put every model in eval mode and, under `no_grad`, time one call of each
    per round with Module 14's `time_rounds` (`warmup` untimed rounds, then `repeats`
    timed ones; round r starts at model number `r % len(models)`; `clock=timer`,
    `number=1`); entry r of each array is the model's `Timing.rounds[r]`.

    Args:
        models: `{name: model}`, at least one; x: the input batch every model gets.
        repeats, warmup: timed rounds (>= 1), after untimed warm-up rounds (>= 0).
        timer: a clock returning seconds.

    Returns:
        `{name: array of repeats seconds}`; entry r of every array comes from round r.
    """
    repeats, warmup = check_int("repeats", repeats, 1), check_int("warmup", warmup, 0)
    models = check_models(models)
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))
    names = list(models)
    times = {name: np.empty(repeats) for name in names}
    modes = {name: model.training for name, model in models.items()}
    try:
        ### BEGIN SOLUTION
        for model in models.values():
            model.eval()
        with no_grad():
            timings = time_rounds([lambda m=m: m(x) for m in models.values()], repeats=repeats, warmup=warmup,
                                  clock=timer, number=1)
        for name, timing in zip(names, timings):
            times[name][:] = timing.rounds
        ### END SOLUTION
    finally:
        for name, model in models.items():
            model.train(modes[name])
    return times


def paired_speedup(reference: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray) -> float:
    """How many times faster `candidate` is than `reference`: the median of the per-round ratios.

    Task 19.3: both arrays come from the same interleaved run (entry r from round r);
    return the median of `reference[r] / candidate[r]` as a float.

    Raises:
        ValueError: the arrays differ in length, are empty, or hold a time <= 0.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    new = np.asarray(candidate, dtype=np.float64).reshape(-1)
    if ref.shape != new.shape or ref.size == 0:
        raise ValueError(f"reference and candidate must be timings of the same rounds, got "
                         f"{ref.size} and {new.size} values")
    for name, t in (("reference", ref), ("candidate", new)):
        if not np.all(t > 0):
            raise ValueError(f"{name} timings must be > 0 seconds to form ratios, got {t[~(t > 0)][:3]}")
    ### BEGIN SOLUTION
    return float(np.median(ref / new))
    ### END SOLUTION


# %%
class _FakeClock:
    """A clock that moves only when a `_Costly` model is called: exact timings for tests."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Costly(Module):
    """Returns its input and advances the fake clock by `cost` seconds; logs its calls."""

    def __init__(self, name: str, clock: _FakeClock, cost: float, log: list) -> None:
        super().__init__()
        self.name, self.clock, self.cost, self.log = name, clock, cost, log

    def forward(self, x: Tensor) -> Tensor:
        from tinytorch.core.autograd import is_grad_enabled

        self.log.append((self.name, self.training, is_grad_enabled(), x.shape[0]))
        self.clock.now += self.cost
        return x


# %% nbgrader={"grade": true, "grade_id": "test-interleaved-latency", "locked": true, "points": 3}
def test_unit_interleaved_latency():
    """Tasks 19.2 and 19.3"""
    clock, log = _FakeClock(), []
    models = {"a": _Costly("a", clock, 0.003, log), "b": _Costly("b", clock, 0.001, log)}
    times = interleaved_latency(models, np.zeros((2, 3)), repeats=4, warmup=1, timer=clock)
    assert np.allclose(times["a"], 0.003) and np.allclose(times["b"], 0.001) and times["a"].shape == (4,)
    # Five rounds, the order rotating (a b, b a, ...); every call in eval mode without grad.
    assert [entry[0] for entry in log] == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]
    assert all(not training and not grad for _, training, grad, _ in log)
    assert models["a"].training and models["b"].training  # modes restored
    assert abs(paired_speedup(times["a"], times["b"]) - 3.0) < 1e-9
    # One noisy round (both models slowed 10x) leaves the median ratio alone.
    assert paired_speedup([1.0, 1.0, 10.0], [0.5, 0.5, 5.0]) == 2.0


# %% [markdown]
# ## 3. Honest bytes, parameters and FLOPs
#
# What does a model cost to store? It depends on how it is stored:
#
# - A **float model** is its arrays: float32 parameters and buffers, 4 bytes each
#   (`model_size_bytes` from Module 14). A magnitude-pruned float model with 90% zeros
#   costs exactly as much: a zero in a float32 array is four bytes like any number.
# - A **compressed model** (Module 16's `CompressedModel`, or any model holding INT8
#   layers) is stored as the file `save_compressed` writes: sparse INT8 weights, their
#   positions, scales, compressed. `compressed_size(model).file_bytes` is that file's
#   length, byte for byte.
# - A **structured** variant with its units removed is a genuinely smaller float model.
#
# Next to bytes we count **parameters** (stored weight and bias values, int8 or float)
# and how many of them are **non-zero**, and Module 14's **FLOPs** for one example. The
# FLOP count is dense: a zero weight is still multiplied. That is honest too, because
# this framework's matmuls do multiply it, as the latency column will confirm.

# %% nbgrader={"grade": false, "grade_id": "storage-bytes", "solution": true}
#| export
def is_compressed(model: Module) -> bool:
    """Whether `model` is stored as a compressed INT8 file: a CompressedModel or a model with INT8 layers."""
    return isinstance(model, CompressedModel) or any(isinstance(m, QuantizedLayer) for m in model.modules())


def count_weights(model: Module) -> tuple[int, int]:
    """`(stored weight values, non-zero ones)`: float parameters plus the int8 weights and biases of INT8 layers."""
    arrays = [p.data for p in model.parameters()]
    for m in model.modules():
        if isinstance(m, QuantizedLayer):
            arrays += [m.qweight.values] + ([] if m.bias is None else [np.asarray(m.bias)])
    return int(sum(a.size for a in arrays)), int(sum(np.count_nonzero(a) for a in arrays))


def storage_bytes(model: Module) -> int:
    """The bytes `model` really takes to store: its compressed file if it is INT8, else its arrays.

    Task 19.4: for a compressed model, `compressed_size(model).file_bytes` (when the file
    format can hold every layer, i.e. it is not None); otherwise `model_size_bytes(model)`.

    Raises:
        TypeError: `model` is not a Module.
    """
    check_instance("model", model, Module, "a tinytorch Module")
    ### BEGIN SOLUTION
    if is_compressed(model):
        file_bytes = compressed_size(model).file_bytes
        if file_bytes is not None:
            return int(file_bytes)
    return int(model_size_bytes(model))
    ### END SOLUTION


# %%
from tinytorch.recipes import DigitsRecipe, digits_mlp  # Module 09's given builder and recipe


# %% nbgrader={"grade": true, "grade_id": "test-storage-bytes", "locked": true, "points": 2}
def test_unit_storage_bytes():
    """Task 19.4"""
    model = digits_mlp((64, 32, 32, 10))
    params = 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert storage_bytes(model) == 4 * params and count_weights(model) == (params, params)
    magnitude_prune(model, 0.5)
    assert storage_bytes(model) == 4 * params  # zeros in float32 cost 4 bytes each
    small = prune_and_quantize(model, sparsity=None)
    assert is_compressed(small) and not is_compressed(model)
    assert storage_bytes(small) == compressed_size(small).file_bytes < 4 * params
    total, nonzero = count_weights(small)
    assert total == params and nonzero < params


# %% [markdown]
# ## 4. The Pareto front: keep every variant nobody beats
#
# Accuracy against size (or latency) rarely has one winner. A variant is worth
# considering only if no other variant is **at least as good on both** (no more bytes,
# no less accuracy) **and strictly better on one**. Such a variant is *dominated*;
# the rest form the **Pareto front**, the best accuracy available at each cost.
#
# Ties need care. Two variants with the same cost and the same accuracy do not
# dominate each other (neither is strictly better), so both stay on the front. The same
# cost with lower accuracy, or the same accuracy at a higher cost, is dominated.

# %% nbgrader={"grade": false, "grade_id": "pareto-front", "solution": true}
#| export
def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices, in increasing order, of the points no other point dominates (lower cost, higher score).

    Task 19.5: point j dominates point i when `costs[j] <= costs[i]` and
    `scores[j] >= scores[i]`, one of them strictly; keep every i that nothing dominates.

    Raises:
        ValueError: the lengths differ, or a value is not finite.
    """
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if c.shape != s.shape:
        raise ValueError(f"costs and scores must have the same length, got {c.size} and {s.size}")
    for name, v in (("costs", c), ("scores", s)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite numbers, got {v[~np.isfinite(v)][:3]}")
    ### BEGIN SOLUTION
    front = []
    for i in range(c.size):
        dominated = (c <= c[i]) & (s >= s[i]) & ((c < c[i]) | (s > s[i]))
        if not dominated.any():
            front.append(i)
    return front
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-pareto-front", "locked": true, "points": 2}
def test_unit_pareto_front():
    """Task 19.5"""
    # (cost, score): 1 beats 2 (cheaper, better); 3 and 4 tie exactly; 5 costs as much as 3 for less.
    costs = [1.0, 2.0, 3.0, 5.0, 5.0, 5.0]
    scores = [0.5, 0.9, 0.8, 0.95, 0.95, 0.9]
    assert pareto_front(costs, scores) == [0, 1, 3, 4]
    assert pareto_front([], []) == [] and pareto_front([7.0], [0.1]) == [0]


# %% [markdown]
# ## 5. The benchmark
#
# `Benchmark(models, data)` puts the pieces together. `data` is what the models are
# judged on: an `(x, y)` pair of arrays, or a `DataLoader` (its batches are gathered
# once, so every model sees exactly the same examples).
#
# - **accuracy**: Module 07's `evaluate` (argmax against the labels) on all of `data`.
# - **latency**: one batch of `batch_size` rows taken from `data` (cycled if `data` is
#   shorter), the same batch for every model, timed with `interleaved_latency`.
# - **size**: `storage_bytes`, `count_weights`, and Module 14's `count_flops` for one
#   example.
#
# `run()` returns a `BenchmarkResult`: one row per model, the raw per-round timings
# (so `result.speedup("structured")` is a paired ratio against the first model), the
# Pareto fronts, a Markdown table and a plot.

# %% nbgrader={"grade": false, "grade_id": "result", "solution": false}
#| export
@dataclass
class BenchmarkRow:
    """One model's measurements; a metric that was not measured stays None."""

    name: str
    accuracy: float | None = None
    latency: LatencyStats | None = None
    bytes: int | None = None
    params: int | None = None
    nonzero: int | None = None
    flops: int | None = None


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


class BenchmarkResult:
    """The table `Benchmark.run` returns: rows by model name, raw timings, fronts, Markdown, plot."""

    COSTS = ("bytes", "latency")

    def __init__(self, rows: list[BenchmarkRow], times: dict[str, np.ndarray], metrics: tuple[str, ...],
                 batch_size: int) -> None:
        self.rows, self.times, self.metrics, self.batch_size = rows, times, metrics, batch_size

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    def __getitem__(self, name: str) -> BenchmarkRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no model named {name!r}; the table has {', '.join(map(repr, self.names))}")

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def _need(self, metric: str, what: str) -> None:
        if metric not in self.metrics:
            raise ValueError(f"{what} needs the {metric!r} metric; this run measured {', '.join(self.metrics)}")

    def speedup(self, name: str, reference: str | None = None) -> float:
        """How many times faster `name` ran than `reference` (default: the first model), paired by round."""
        self._need("latency", "speedup")
        reference = self.names[0] if reference is None else reference
        for known in (name, reference):
            self[known]  # an unknown name raises KeyError, naming the models there are
        return paired_speedup(self.times[reference], self.times[name])

    def check(self, name: str, reference: str | None = None) -> Speedup:
        """Module 14's judgement of `speedup(name)`: flagged when the rounds disagree, or when it
        beats the FLOP ratio by a clear margin (with the 'size' metric, which counts FLOPs)."""
        reference = self.names[0] if reference is None else reference
        self.speedup(name, reference)  # the same checks of the names
        ref, new = self[reference], self[name]
        work = ref.flops / new.flops if ref.flops and new.flops else None
        return compare_timings(Timing(tuple(self.times[reference])), Timing(tuple(self.times[name])), work)

    def _costs(self, cost: str) -> list[float]:
        if cost not in self.COSTS:
            raise ValueError(f"cost must be one of {', '.join(self.COSTS)}, got {cost!r}")
        self._need("size" if cost == "bytes" else "latency", f"a front against {cost}")
        return [float(r.bytes) if cost == "bytes" else r.latency.median for r in self.rows]

    def pareto(self, cost: str = "bytes") -> list[str]:
        """Names of the models on the accuracy-vs-`cost` Pareto front ("bytes" or "latency")."""
        costs = self._costs(cost)
        self._need("accuracy", "a Pareto front")
        return [self.rows[i].name for i in pareto_front(costs, [r.accuracy for r in self.rows])]

    def to_markdown(self) -> str:
        """The table in Markdown, with a note on how latency was measured."""
        acc, lat, size = ("accuracy" in self.metrics, "latency" in self.metrics, "size" in self.metrics)
        head = (["model"] + ["accuracy"] * acc + ["latency ms (median)", "IQR ms", "speed-up"] * lat
                + ["bytes", "params", "non-zero", "FLOPs/example"] * size)
        fronts = {c: set(self.pareto(c)) for c, on in (("bytes", size), ("latency", lat)) if acc and on}
        head += ["Pareto front"] * bool(fronts)
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r.name] + [f"{r.accuracy:.2%}"] * acc
            if lat:
                cells += [_ms(r.latency.median), _ms(r.latency.iqr), f"{self.speedup(r.name):.2f}x"]
            if size:
                cells += [f"{r.bytes:,}", f"{r.params:,}", f"{r.nonzero:,}", f"{r.flops:,}"]
            if fronts:
                cells.append(", ".join(c for c, names in fronts.items() if r.name in names))
            lines.append("| " + " | ".join(cells) + " |")
        if lat:
            repeats = len(next(iter(self.times.values())))
            lines.append(f"\nLatency: batch of {self.batch_size}, median of {repeats} interleaved rounds, one BLAS "
                         f"thread; speed-up = median per-round ratio against {self.names[0]!r}.")
            lines += [f"[!] {r.name!r}: {flag}" for r in self.rows[1:] for flag in self.check(r.name).flags]
        if size:
            lines.append("Bytes: the compressed file for INT8 models, the float32 arrays otherwise.")
        return "\n".join(lines)

    __str__ = to_markdown

    def plot(self, path: str | Path) -> Path:
        """Save accuracy vs bytes and vs latency (whichever were measured), Pareto fronts marked, as an image."""
        # No pyplot: an Agg canvas of our own leaves the user's matplotlib backend alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from tinytorch.core.files import write_figure

        self._need("accuracy", "plot")
        panels = [c for c in self.COSTS if ("size" if c == "bytes" else "latency") in self.metrics]
        if not panels:
            raise ValueError("plot needs the 'size' or 'latency' metric as well as 'accuracy'")
        fig = Figure(figsize=(5.5 * len(panels), 4.2))
        FigureCanvasAgg(fig)
        accuracy = np.array([100 * r.accuracy for r in self.rows])
        for ax, cost in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            xs = np.array(self._costs(cost)) * (1e3 if cost == "latency" else 1)
            if cost == "latency":
                spread = [[1e3 * (r.latency.median - r.latency.q1) for r in self.rows],
                          [1e3 * (r.latency.q3 - r.latency.median) for r in self.rows]]
                ax.errorbar(xs, accuracy, xerr=spread, fmt="none", ecolor="gray", capsize=3)
            front = sorted(pareto_front(xs, accuracy), key=lambda i: xs[i])
            ax.scatter(xs, accuracy, color="tab:blue", zorder=2)
            ax.step(xs[front], accuracy[front], where="post", color="tab:red", zorder=1)
            ax.scatter(xs[front], accuracy[front], s=90, facecolors="none", edgecolors="tab:red",
                       zorder=3, label="Pareto front")
            for name, x, y in zip(self.names, xs, accuracy):
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
            if cost == "bytes":
                ax.set_xscale("log")
            ax.set(xlabel="stored bytes" if cost == "bytes" else f"median latency, batch {self.batch_size} (ms)",
                   ylabel="accuracy (%)", title=f"accuracy vs {'size' if cost == 'bytes' else 'latency'}")
            ax.legend(loc="best")
        fig.tight_layout()
        path = Path(path)
        write_figure(fig, path)
        return path


# %% [markdown]
# `Benchmark` checks what it is given before measuring anything: an empty dict, a value
# that is not a model, an unknown metric or `repeats < 1` each raise an error that
# says what was given and what is allowed.

# %% nbgrader={"grade": false, "grade_id": "benchmark-run", "solution": true}
#| export
def _plain(a: object) -> np.ndarray:
    return np.asarray(a.data if isinstance(a, Tensor) else a)


def _as_arrays(data: object) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` arrays from an `(x, y)` pair or from an iterable of `(x, y, ...)` batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(a, (np.ndarray, Tensor)) for a in data):
        batches = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, np.ndarray, Tensor, Mapping)):
        batches = list(data)
    else:
        raise TypeError(f"data must be an (x, y) pair of arrays or a DataLoader of (x, y) batches, "
                        f"got {type(data).__name__}")
    if not batches or not all(isinstance(b, (tuple, list)) and len(b) >= 2 for b in batches):
        raise TypeError("data must yield (x, y) batches; got an empty iterable or a batch that is not a pair")
    x = np.concatenate([_plain(b[0]) for b in batches]).astype(np.float32, copy=False)
    y = np.concatenate([_plain(b[1]).reshape(-1) for b in batches])
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"data must hold as many labels as inputs (at least one), got x {x.shape} and y {y.shape}")
    return x, y


class Benchmark:
    """Measure several models side by side on the same data, in one run.

    Args:
        models: `{name: model}`, at least one; the first is the reference for speed-ups.
        data: an `(x, y)` pair of arrays or Tensors, or a DataLoader of `(x, y)` batches.
        metrics: any of "accuracy", "latency", "size" ("size" = bytes, parameters, FLOPs).
        batch_size: rows of the latency batch and of each accuracy batch, >= 1.

    Raises:
        TypeError: `models` is not a dict of Modules, or `data` is not (x, y) data.
        ValueError: no models, an unknown metric, a bad `batch_size`, or empty data.
    """

    METRICS = ("accuracy", "latency", "size")

    def __init__(self, models: Mapping[str, Module], data: object,
                 metrics: Sequence[str] = ("accuracy", "latency", "size"), batch_size: int = 256) -> None:
        self.models = check_models(models)
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = [m for m in metrics if m not in self.METRICS]
        if unknown or not metrics:
            raise ValueError(f"metrics must be drawn from {', '.join(self.METRICS)}, got {list(metrics)!r}")
        self.metrics = tuple(m for m in self.METRICS if m in metrics)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.x, self.y = _as_arrays(data)

    def latency_batch(self) -> Tensor:
        """The batch every model is timed on: the first `batch_size` rows of the data, cycled."""
        return Tensor(self.x[np.arange(self.batch_size) % len(self.x)])

    def run(self, repeats: int = 20, warmup: int = 3,
            timer: Callable[[], float] = time.perf_counter) -> BenchmarkResult:
        """Measure every model on every metric; latency with interleaved rounds.

        Task 19.6: accuracy with `evaluate` over a DataLoader of the data; size with
        `storage_bytes`, `count_weights` and `count_flops` on one example's shape;
        latency with `interleaved_latency` on `latency_batch()` and `latency_stats`.

        Args:
            repeats: timed rounds, >= 1 (checked even when latency is not measured).
            warmup: untimed rounds first, >= 0.
            timer: the clock for latency (tests pass a fake one).
        """
        repeats, warmup = check_int("repeats", repeats, 1), check_int("warmup", warmup, 0)
        rows = {name: BenchmarkRow(name) for name in self.models}
        times: dict[str, np.ndarray] = {}
        ### BEGIN SOLUTION
        if "accuracy" in self.metrics:
            loader = DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)
            for name, model in self.models.items():
                rows[name].accuracy = evaluate(model, loader)
        if "size" in self.metrics:
            example = (1,) + self.x.shape[1:]
            for name, model in self.models.items():
                rows[name].bytes = storage_bytes(model)
                rows[name].params, rows[name].nonzero = count_weights(model)
                rows[name].flops = count_flops(model, example)
        if "latency" in self.metrics:
            times = interleaved_latency(self.models, self.latency_batch(), repeats, warmup, timer)
            for name, seconds in times.items():
                rows[name].latency = latency_stats(seconds)
        ### END SOLUTION
        return BenchmarkResult(list(rows.values()), times, self.metrics, self.batch_size)


# %%
# Two untrained MLPs of different widths on random data: the table, its fronts, a paired speed-up.
_rng = np.random.default_rng(0)
_data = (_rng.random((300, 64), dtype=np.float32), _rng.integers(0, 10, 300))
_result = Benchmark({"wide": digits_mlp((64, 256, 256, 10)), "narrow": digits_mlp((64, 32, 32, 10))},
                    _data, batch_size=128).run(repeats=5, warmup=1)
print(_result.to_markdown())


# %% nbgrader={"grade": true, "grade_id": "test-benchmark-run", "locked": true, "points": 3}
def test_unit_benchmark():
    """Task 19.6"""
    from tinytorch.core.training import evaluate as _evaluate

    rng = np.random.default_rng(1)
    x, y = rng.random((50, 64), dtype=np.float32), rng.integers(0, 10, 50)
    wide, narrow = digits_mlp((64, 48, 10)), digits_mlp((64, 8, 10))
    result = Benchmark({"wide": wide, "narrow": narrow}, (x, y), batch_size=16).run(repeats=2, warmup=0)
    assert result["wide"].accuracy == _evaluate(wide, DataLoader(TensorDataset(x, y), batch_size=50))
    assert result["narrow"].bytes == 4 * (64 * 8 + 8 + 8 * 10 + 10) == 4 * result["narrow"].params
    assert result["wide"].flops == 2 * (64 * 48 + 48 * 10)
    assert result.to_markdown().startswith("| model | accuracy | latency ms (median) |")
    # Latency alone, on a fake clock: exact medians, one call per model per round, batch of 16.
    clock, log = _FakeClock(), []
    slow, fast = _Costly("slow", clock, 0.5, log), _Costly("fast", clock, 0.25, log)
    result = Benchmark({"slow": slow, "fast": fast}, (x, y), metrics="latency", batch_size=16).run(
        repeats=3, warmup=1, timer=clock)
    assert (result["slow"].latency.median, result["fast"].latency.median) == (0.5, 0.25)
    assert result.speedup("fast") == 2.0 and result["fast"].accuracy is None
    assert len(log) == 8 and all(rows == 16 for *_, rows in log)
    for bad in ({}, {"m": "not a model"}):
        try:
            Benchmark(bad, (x, y))
        except (ValueError, TypeError):
            continue
        raise AssertionError(f"Benchmark({bad}) should raise")


# %% [markdown]
# ## 6. The standard variants of a trained model
#
# Module 16's techniques, applied to one trained model, give the rows of the table. Each
# is built by calling the library, with the same fine-tuning budget (`epochs` of Adam
# at `lr`) for every variant that is fine-tuned:
#
# | key | how it is made |
# |---|---|
# | `baseline` | a copy of the trained float model |
# | `pruned` | `magnitude_prune` to `sparsity` (global), then `fine_tune` with the masks attached |
# | `structured` | `structured_prune` of `structured_ratio` of each hidden layer's units, the units physically removed with `remove_pruned_units`, then fine-tuned |
# | `int8` | `prune_and_quantize(baseline, sparsity=None)`: INT8 without pruning |
# | `pruned+int8` | `prune_and_quantize(pruned, sparsity=None)`: the pruned zeros, stored as sparse INT8 |
#
# The input model is never changed. Only `structured` does less arithmetic: the pruned
# variants multiply their zeros, and the INT8 ones dequantize their weights on every
# call, so expect them to be no faster than the baseline here, whatever their size.

# %% nbgrader={"grade": false, "grade_id": "standard-variants", "solution": true}
#| export benchmarking.variants
VARIANTS = ("baseline", "pruned", "structured", "int8", "pruned+int8")


def standard_variants(model: Module, train_loader: Iterable, loss_fn: Callable, epochs: int = 1,
                      sparsity: float = 0.9, structured_ratio: float = 0.75, lr: float = 1e-3,
                      calibration_data: object = None, progress: bool | None = False) -> dict[str, Module]:
    """The five standard variants of a trained model, built with Module 16 (and 15).

    Task 19.7: copy the model for each variant (see the table above); fine-tune the
    pruned ones with `fine_tune` and a fresh `Adam(lr=lr)`, masks attached while units
    are only zeroed; build the INT8 ones with `prune_and_quantize(..., sparsity=None)`.

    Args:
        model: a trained float model (not changed); train_loader, loss_fn: for fine-tuning.
        epochs: fine-tuning epochs of each pruned variant, >= 0; lr: Adam's learning rate.
        sparsity, structured_ratio: fraction of weights / of each hidden layer's units pruned.
        calibration_data: passed to `prune_and_quantize` (INT8 activations when given).
        progress: fine-tuning progress bars (`None`: on a terminal).

    Returns:
        `{name: model}` for the names in `VARIANTS`, in that order.
    """
    check_instance("model", model, Module, "a tinytorch Module")
    epochs = check_int("epochs", epochs, 0)

    def tune(net: Module, masks: object) -> None:
        if epochs:
            fine_tune(net, Adam(net.parameters(), lr=lr), loss_fn, train_loader, epochs, masks, progress=progress)

    ### BEGIN SOLUTION
    baseline = copy.deepcopy(model)
    pruned = copy.deepcopy(model)
    tune(pruned, magnitude_prune(pruned, sparsity))
    structured = copy.deepcopy(model)
    masks = structured_prune(structured, structured_ratio)
    structured = remove_pruned_units(structured, masks)
    tune(structured, None)
    return {
        "baseline": baseline,
        "pruned": pruned,
        "structured": structured,
        "int8": prune_and_quantize(baseline, sparsity=None, calibration_data=calibration_data),
        "pruned+int8": prune_and_quantize(pruned, sparsity=None, calibration_data=calibration_data),
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-standard-variants", "locked": true, "points": 2}
def test_unit_standard_variants():
    """Task 19.7"""
    from tinytorch.compression import measure_sparsity
    from tinytorch.core.losses import CrossEntropyLoss

    rng = np.random.default_rng(2)
    x, y = rng.random((64, 64), dtype=np.float32), rng.integers(0, 10, 64)
    model = digits_mlp((64, 16, 16, 10))
    before = model.state_dict()
    variants = standard_variants(model, DataLoader(TensorDataset(x, y), batch_size=32), CrossEntropyLoss())
    assert tuple(variants) == VARIANTS
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())  # input unchanged
    assert abs(measure_sparsity(variants["pruned"]) - 0.9) < 0.01
    assert isinstance(variants["int8"], CompressedModel) and isinstance(variants["pruned+int8"], CompressedModel)
    assert count_weights(variants["pruned+int8"])[1] < count_weights(variants["int8"])[1]
    # 75% of 16 hidden units: 4 remain in each hidden layer (zeroed or removed).
    hidden = variants["structured"][0].weight.data
    assert np.count_nonzero(np.abs(hidden).sum(axis=1)) == 4


# %% [markdown]
# ## 7. Measure it yourself
#
# The cells below measure on this machine, now, and print what they find; the figures
# in ABOUT.md come from one full run of this file. Set `TINYTORCH_QUICK=1` for a fast
# smoke run (`tito test` does; it also narrows the model to 64-128-128-10). The model is
# a digits MLP 64-512-512-10 (Module 09's `digits_mlp`, trained by its `DigitsRecipe` with
# Adam at lr 1e-3): wide enough that removing three quarters of its hidden units changes
# real work, not just overhead.

# %%
import os

QUICK = os.environ.get("TINYTORCH_QUICK") == "1"
PLOTS = Path(os.environ.get("TINYTORCH_PLOTS", "out/benchmarking"))


def analysis_noise(model, x, calls: int):
    """The same model on the same batch, `calls` times in a row: first call, spread, mean vs median."""
    times = interleaved_latency({"m": model}, x, repeats=calls, warmup=0)["m"]
    stats = latency_stats(times[1:])
    print(f"{calls} calls, batch {len(x)}: the first took {times[0] * 1e3:.1f} ms; the rest: best {stats.best * 1e3:.1f}, "
          f"q1 {stats.q1 * 1e3:.1f}, median {stats.median * 1e3:.1f}, q3 {stats.q3 * 1e3:.1f}, "
          f"mean {stats.mean * 1e3:.1f}, worst {times[1:].max() * 1e3:.1f} ms")


def analysis_sequential_vs_interleaved(a, b, x, runs: int, repeats: int):
    """Speed-up of `b` over `a`, measured `runs` times: one model after the other, and interleaved."""
    x = Tensor(x)
    sequential, interleaved, absolute = [], [], []
    for _ in range(runs):
        ta = interleaved_latency({"a": a}, x, repeats)["a"]
        tb = interleaved_latency({"b": b}, x, repeats)["b"]
        sequential.append(np.median(ta) / np.median(tb))
        times = interleaved_latency({"a": a, "b": b}, x, repeats)
        interleaved.append(paired_speedup(times["a"], times["b"]))
        absolute.append(np.median(times["a"]) * 1e3)
    print(f"speed-up, one model after the other: {', '.join(f'{r:.2f}' for r in sequential)} "
          f"(spread {max(sequential) - min(sequential):.2f})")
    print(f"speed-up, interleaved and paired:    {', '.join(f'{r:.2f}' for r in interleaved)} "
          f"(spread {max(interleaved) - min(interleaved):.2f})")
    print(f"the reference's median in those runs: {', '.join(f'{t:.1f}' for t in absolute)} ms")


def analysis_digits_table():
    """The five standard variants of the digits MLP, benchmarked in one run; table and plot."""
    from tinytorch.core.losses import CrossEntropyLoss

    epochs, tune, repeats = (1, 0, 3) if QUICK else (10, 3, 30)
    width = 128 if QUICK else 512
    run = DigitsRecipe(epochs=epochs, lr=1e-3).fit(digits_mlp((64, width, width, 10)))
    model, train, test = run.model, run.train, run.test.dataset.arrays  # test: the (x, y) arrays
    variants = standard_variants(model, train, CrossEntropyLoss(), epochs=tune, lr=1e-3)
    result = Benchmark(variants, test, batch_size=256).run(repeats=repeats, warmup=3)
    print(result.to_markdown())
    PLOTS.mkdir(parents=True, exist_ok=True)
    print(f"plot: {result.plot(PLOTS / 'digits_variants.png')}")
    return model, variants, test, result


# %%
if __name__ == "__main__":
    _start = time.perf_counter()
    _model, _variants, _test, _table = analysis_digits_table()
    _batch = _test[0][:256]
    analysis_noise(_model, _batch, 10 if QUICK else 60)
    analysis_sequential_vs_interleaved(_variants["baseline"], _variants["structured"], _batch,
                                       runs=2 if QUICK else 5, repeats=3 if QUICK else 15)
    print(f"analyses took {time.perf_counter() - _start:.1f} s")


# %%
def test_module():
    """Run every inline test of Module 19."""
    test_unit_latency_stats()
    test_unit_interleaved_latency()
    test_unit_storage_bytes()
    test_unit_pareto_front()
    test_unit_benchmark()
    test_unit_standard_variants()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 19: all inline tests passed")
