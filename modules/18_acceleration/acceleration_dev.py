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
# # Module 18: Acceleration
#
# > When do zeros become speed? Measure the machine first, then ask each layer.
#
# Module 16 made networks smaller: 90% of the weights zero, whole units removed. Smaller
# is not the same as faster. A pruned layer still multiplies its zeros unless something
# stops it, and a layer with 4x fewer FLOPs may run only 2x faster, or not faster at
# all. This module answers the question with measurements on the machine in front of
# you:
#
# 1. **The roofline**: how many FLOPs per second this machine's cores can do, and how
#    many bytes per second its memory can deliver, each measured with one BLAS thread.
# 2. **Arithmetic intensity**: FLOPs per byte moved, per layer of the digits MLP and
#    CNN, and where each layer sits under the roof (a plot).
# 3. **CSR**: storing and multiplying only the non-zeros, and the measured sparsity
#    from which that beats the dense product (the crossover).
# 4. **Layer by layer**: where a model's time goes, next to where its FLOPs go.
# 5. **Layout**: the same FLOPs on the same bytes, arranged differently; which
#    arrangement the kernels like, and by how much.
#
# Every figure here is measured when you run the file
# (`python modules/18_acceleration/acceleration_dev.py`, or `tito test 18` for the
# tests). `TINYTORCH_QUICK=1` shrinks every experiment for a fast smoke run; the numbers
# worth reading come from a full run (a few minutes on two cores).
#
# **Map of the module.** You write the tasks in this file (eight of them, 18.1-18.8).
# The given code beside it, `measuring_given.py`, holds the plumbing (which CSR kernels
# are installed, finding and swapping layers by name) and the measuring tools the lesson
# reads but does not ask you to write (`SparseChoice`, `crossover_sparsity`,
# `compare_layer_times`); read it if you are curious. The
# timer is Module 14's `time_interleaved`; the pruning is Module 16's.
#
# | task | what you write | section |
# |---|---|---|
# | 18.1 | `matmul_intensity`: FLOPs per byte of a matrix product | 1 |
# | 18.2 | `attainable_flops`: the roofline itself | 1 |
# | 18.3 | `measure_roofline`: this machine's peak FLOP/s and bytes/s | 1 |
# | 18.4 | `layer_bytes`: the bytes one layer call moves | 2 |
# | 18.5 | `to_csr`: the CSR layout of a weight | 3 |
# | 18.6 | `csr_matmul`: the CSR product in NumPy | 3 |
# | 18.7 | `SparseLinear.forward`: a layer on CSR weights, with its backward | 3 |
# | 18.8 | `to_sparse`: swap in CSR only where it was measured faster | 3 |

# %%
#| default_exp acceleration.roofline

# %% [markdown]
# ## 1. The roofline: what this machine can do
#
# A layer's time has two lower bounds. The arithmetic: a core does at most some number
# of floating-point operations per second, its **peak FLOP/s**. The memory traffic:
# every number the layer reads or writes has to travel between memory and the core,
# at most some number of **bytes per second**. Whichever bound is higher is the one
# that holds; the time cannot beat it:
#
#     time >= max(FLOPs / peak FLOP/s, bytes / bandwidth)
#
# Divide the FLOPs by that time and you get the FLOP rate a layer can reach at best:
#
#     attainable FLOP/s = min(peak FLOP/s, intensity x bandwidth),  intensity = FLOPs / bytes
#
# Drawn against the intensity on log axes, this is a sloped line (memory-bound: more
# FLOPs per byte, more FLOP/s) that meets a flat roof (compute-bound) at the **ridge
# point**, `peak / bandwidth` FLOPs per byte. A layer to the left of the ridge waits on
# memory: halving its FLOPs without halving its bytes does not make it faster. A layer
# to the right is limited by arithmetic: its time follows its FLOPs. That picture is the
# roofline model (Williams, Waterman and Patterson, 2009).
#
# Its most useful case is a matrix product `(m, k) @ (k, n)`: 2mkn FLOPs (one multiply
# and one add per term) on `m*k + k*n` numbers read and `m*n` written. Square matrices of
# side n do 2n^3 FLOPs on 3n^2 numbers: the intensity grows with n, which is why a large
# matmul is how one measures a machine's peak.
#
# **Your tasks in this section.**
#
# - *18.1* `matmul_intensity(m, k, n)`: the FLOPs of the product over the bytes of its
#   two inputs and its output, each touched once (the best any kernel can do).
# - *18.2* `attainable_flops(intensity, peak, bandwidth)`: the roofline itself, the
#   lower of the two roofs. Let it take an array of intensities too: the plot draws the
#   roof from one call. (`np.minimum` does both; `[()]` turns a 0-d result back into a
#   plain number.)
# - *18.3* `measure_roofline`: time a large matmul and a large copy *in the same
#   interleaved rounds* and turn the seconds into FLOP/s and bytes/s. The timer is a
#   parameter, so the test can hand it a fake one with known seconds and check your
#   arithmetic exactly: a test that timed for real could only check that the figures
#   are positive.

# %% nbgrader={"grade": false, "grade_id": "roofline", "solution": true}
#| export
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytorch.compression import sequential_layers
from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_int, check_number, check_shape
from tinytorch.core.layers import Module
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import layer_flops, time_interleaved


def matmul_intensity(m: int, k: int, n: int, itemsize: int = 4) -> float:
    """FLOPs per byte of `(m, k) @ (k, n)`: 2mkn FLOPs over the bytes of both inputs and the output. Task 18.1

    Each input is read once and the output written once (the best a kernel can do).

    Raises:
        ValueError: a size or `itemsize` is not an int >= 1.
    """
    for name, value in (("m", m), ("k", k), ("n", n), ("itemsize", itemsize)):
        check_int(name, value, 1)
    ### BEGIN SOLUTION
    flops = 2 * m * k * n
    moved = itemsize * (m * k + k * n + m * n)
    return flops / moved
    ### END SOLUTION


def attainable_flops(intensity: float | np.ndarray, peak_flops: float, bandwidth: float) -> float | np.ndarray:
    """The roofline: `min(peak_flops, intensity * bandwidth)`, FLOP/s at best at this intensity. Task 18.2

    Args:
        intensity: FLOPs per byte, >= 0 (a number or an array of them).
        peak_flops: the machine's peak, FLOP/s, > 0.
        bandwidth: the machine's memory bandwidth, bytes/s, > 0.

    Raises:
        ValueError: a negative intensity, or a peak or bandwidth that is not > 0.
    """
    if not (np.all(np.asarray(intensity) >= 0)):  # also rejects NaN
        raise ValueError(f"intensity must be >= 0 FLOPs per byte, got {intensity!r}")
    for name, value in (("peak_flops", peak_flops), ("bandwidth", bandwidth)):
        check_number(name, value, 0, low_open=True)
    ### BEGIN SOLUTION
    return np.minimum(peak_flops, np.asarray(intensity, dtype=np.float64) * bandwidth)[()]
    ### END SOLUTION


@dataclass(frozen=True)
class Roofline:
    """A machine's measured peak FLOP/s and memory bandwidth (bytes/s)."""

    peak_flops: float
    bandwidth: float

    @property
    def ridge(self) -> float:
        """The intensity (FLOPs per byte) where memory stops being the limit."""
        return self.peak_flops / self.bandwidth

    def attainable(self, intensity: float | np.ndarray) -> float | np.ndarray:
        """FLOP/s at best at `intensity` (see `attainable_flops`)."""
        return attainable_flops(intensity, self.peak_flops, self.bandwidth)

    def seconds(self, flops: float, nbytes: float) -> float:
        """The least time `flops` FLOPs on `nbytes` bytes can take on this machine."""
        return max(flops / self.peak_flops, nbytes / self.bandwidth)


def _cpu_medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    # NOTE: with BLAS on one thread, this process's CPU time is the latency an idle
    # machine would show; elapsed time would also count other programs' turns.
    return time_interleaved(fns, repeats=repeats, clock="cpu")


def measure_roofline(size: int = 1024, nbytes: int = 1 << 26, repeats: int = 5,
                     timer: Callable[..., list[float]] | None = None) -> Roofline:
    """This machine's peak FLOP/s (a float32 matmul) and bandwidth (an array copy), one BLAS thread. Task 18.3

    Time two things in the same interleaved rounds: `np.matmul(a, b, out=c)` of two
    `(size, size)` float32 matrices (2 x size^3 FLOPs), and `np.copyto(dst, src)` of
    float32 arrays of `nbytes` bytes each (the copy reads `nbytes` and writes `nbytes`).
    Call `timer([matmul, copy], repeats=repeats)`, matmul first.

    Args:
        size: side of the matrices, >= 1 (large enough that the matmul is compute-bound).
        nbytes: bytes of the copied array, >= 4: larger than the caches for memory's
            bandwidth, smaller than a cache for that cache's.
        repeats: timing rounds.
        timer: `timer(fns, repeats=...) -> seconds per call of each`; default
            Module 14's `time_interleaved` on the CPU clock (it holds BLAS to one thread).

    Returns:
        `Roofline(peak_flops, bandwidth)`.

    Raises:
        ValueError: `size`, `nbytes` (< 4) or `repeats` out of range.
    """
    size, repeats = check_int("size", size, 1), check_int("repeats", repeats, 1)
    if check_int("nbytes", nbytes, 1) < 4:
        raise ValueError(f"nbytes must be at least 4 (one float32), got {nbytes}")
    timer = _cpu_medians if timer is None else timer
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    src = rng.standard_normal(nbytes // 4, dtype=np.float32)
    ### BEGIN SOLUTION
    c, dst = np.empty_like(a), np.empty_like(src)
    t_matmul, t_copy = timer([lambda: np.matmul(a, b, out=c), lambda: np.copyto(dst, src)], repeats=repeats)
    return Roofline(2 * size ** 3 / t_matmul, 2 * src.nbytes / t_copy)
    ### END SOLUTION


# %%
import os
import tempfile
import time as _time
from pathlib import Path

from tinytorch.core.layers import Sequential
from tinytorch.profiling import compare_timings, time_rounds


def _timed(fns, repeats):
    """Each function's interleaved rounds (`Timing`), one BLAS thread, on the CPU clock."""
    return time_rounds(fns, repeats=repeats, clock="cpu")


def _flag(speedup) -> str:
    """' !' after a ratio whose check raised a flag (the flags are printed under the table)."""
    return " !" if not speedup.plausible else "  "

QUICK = os.environ.get("TINYTORCH_QUICK") == "1"
PLOTS = Path(os.environ.get("TINYTORCH_PLOTS") or (tempfile.mkdtemp() if QUICK else "acceleration-plots"))

# %% nbgrader={"grade": true, "grade_id": "test-matmul-intensity", "locked": true, "points": 1}
def test_unit_matmul_intensity():
    """Task 18.1"""
    assert matmul_intensity(2, 3, 4) == 2 * 2 * 3 * 4 / (4 * (6 + 12 + 8))
    assert abs(matmul_intensity(1024, 1024, 1024) - 1024 / 6) < 1e-9  # 2n^3 / (3 n^2 * 4 bytes)
    assert matmul_intensity(16, 72, 4096, itemsize=8) == 2 * 16 * 72 * 4096 / (8 * (16 * 72 + 72 * 4096 + 16 * 4096))


# %% nbgrader={"grade": true, "grade_id": "test-attainable", "locked": true, "points": 1}
def test_unit_attainable_flops():
    """Task 18.2"""
    assert attainable_flops(2.0, peak_flops=100.0, bandwidth=10.0) == 20.0  # memory-bound
    assert attainable_flops(50.0, peak_flops=100.0, bandwidth=10.0) == 100.0  # under the flat roof
    np.testing.assert_array_equal(attainable_flops(np.array([0.0, 5.0, 20.0]), 100.0, 10.0), [0.0, 50.0, 100.0])
    assert Roofline(100.0, 10.0).ridge == 10.0


# %% nbgrader={"grade": true, "grade_id": "test-measure-roofline", "locked": true, "points": 2}
def test_unit_measure_roofline():
    """Task 18.3"""
    calls = []

    def fake_timer(fns, repeats):  # each function runs once; the "seconds" are known
        calls.append(len(fns))
        for fn in fns:
            fn()
        return [0.5, 0.25]

    roof = measure_roofline(size=8, nbytes=4096, repeats=2, timer=fake_timer)
    assert calls == [2], calls
    assert roof.peak_flops == 2 * 8 ** 3 / 0.5 and roof.bandwidth == 2 * 4096 / 0.25, roof
    real = measure_roofline(size=64, nbytes=1 << 16, repeats=1)
    assert np.isfinite(real.peak_flops) and real.peak_flops > 0 and real.bandwidth > 0


# %%
if __name__ == "__main__":
    test_unit_matmul_intensity()
    test_unit_attainable_flops()
    test_unit_measure_roofline()

# %% [markdown]
# ### Measure it: this machine's roofline
#
# Three measurements with one BLAS thread: the peak from a float32 matmul of side 1024
# (its intensity, 1024/6 = 171 FLOPs per byte, is far right of any ridge), and two
# bandwidths from a copy. Memory's comes from a 64 MB array, four times the largest
# cache; the other from a 512 KB array, which sits in the second-level cache of the
# core (1 MB here) after the first round. The caches are a second, higher roof over the
# same slope: data a layer reuses while it is still close to the core costs much less
# than data that must come from memory.

# %%
def analysis_roofline():
    """This machine's roofline: peak FLOP/s, memory and cache bandwidth, one BLAS thread."""
    size, big, repeats = (256, 1 << 22, 2) if QUICK else (1024, 1 << 26, 7)
    memory = measure_roofline(size, big, repeats)
    cache = measure_roofline(size, 1 << 19, repeats)
    print(f"peak (float32 matmul {size}x{size}):  {memory.peak_flops / 1e9:8.1f} GFLOP/s")
    print(f"memory bandwidth (copy {big >> 20} MB):     {memory.bandwidth / 1e9:8.1f} GB/s  "
          f"-> ridge at {memory.ridge:.1f} FLOPs per byte")
    print(f"cache bandwidth (copy 512 KB):      {cache.bandwidth / 1e9:8.1f} GB/s  "
          f"-> ridge at {memory.peak_flops / cache.bandwidth:.1f} FLOPs per byte")
    return memory, Roofline(memory.peak_flops, cache.bandwidth)


if __name__ == "__main__":
    _start = _time.perf_counter()
    ROOF, CACHE_ROOF = analysis_roofline()

# %% [markdown]
# **Reading the results.** Our three runs, on one shared AMD EPYC core with OpenBLAS on
# one thread, differ in one thing: the OpenBLAS kernel. With the AVX2 and AVX-512 kernels
# the peak was 93.3-99.8 GFLOP/s; with Prescott's, which has only SSE, 34.9 (Prescott).
# Memory (22.7-26.3 GB/s) and the second-level cache (85.4-88.9 GB/s) do not care which
# kernel runs. The ridge is then near 3.6-3.8 FLOPs per byte from memory and about one
# from cache with the fast kernels, but 1.5 (Prescott) and 0.4 (Prescott) with the slow one:
# the same layer can be compute-bound under one kernel and memory-bound under another.
# The roofline belongs to the machine and its library, not to the layer. On a shared
# machine no roofline is sharper than about a fifth either, and a conclusion that needs
# more precision than that needs a quieter machine. Read your own figures the same
# way: a layer needs more than `ridge` FLOPs for every byte it moves before the cores,
# not the memory, set its pace. Every float32 number is 4 bytes, so a layer that does
# fewer than about 16 FLOPs per number it touches (4 per byte) is memory-bound here.
# Elementwise layers (ReLU: 0 FLOPs, 8 bytes per number) are always on the slope.
#
# Two cautions. The peak is what OpenBLAS reaches on a large, friendly matmul; a small
# or oddly shaped one reaches less, so the flat roof is a ceiling, not a promise. And a
# copy is not the only way to move bytes: a sum only reads (its bandwidth is often a
# little lower, with no writes to overlap), a write also reads its cache line first
# on most machines. One number per level is a model, which is what we want: simple
# enough to reason with, close enough to be checked.

# %% [markdown]
# ## 2. Arithmetic intensity, layer by layer
#
# To place a layer on the roofline we need its FLOPs (Module 14's `layer_flops`) and
# the bytes it moves. We count the bytes a good implementation cannot avoid, for our
# implementations:
#
# - every layer reads its input and writes its output once;
# - a layer with parameters also reads them (`p.data.nbytes` for each parameter);
# - a `Conv2d` first unfolds its input with `im2col` (Module 09): one column of
#   `C x kh x kw` numbers per output position (`N x OH x OW` of them), written once and
#   read once by the matrix product. For a 3x3 kernel that is 9 copies of the input, and
#   usually far more traffic than the weights.
#
# The count leaves out what a cache hides (a weight read once per call, not once per
# batch row) and what an implementation adds (temporaries, the transposes around the
# product). It is a model; the measurement below times each layer and shows how close
# it comes.
#
# A worked example, the digits CNN's second convolution on a batch of 256: its input is
# 256 x 8 x 4 x 4 numbers, its output 256 x 16 x 4 x 4, and im2col makes 8 x 3 x 3 = 72
# numbers for each of the 256 x 4 x 4 = 4,096 output positions, written and read: 2 x
# 72 x 4,096 = 589,824 numbers, twenty times the input. With the 1,152 weights and 16
# biases that is about 2.8 MB, for 2 x 72 x 16 x 4,096 = 9.4 MFLOP: 3.4 FLOPs per byte.
# *Task 18.4*, `layer_bytes`, does this count for any layer; `layer_intensities` runs
# it over a whole model.

# %% nbgrader={"grade": false, "grade_id": "layer-bytes", "solution": true}
#| export
def layer_bytes(layer: Module, input_shape: tuple[int, ...], output_shape: tuple[int, ...],
                itemsize: int = 4) -> int:
    """Bytes one call of `layer` moves: input, output, parameters, and a Conv2d's im2col columns. Task 18.4

    Input and output count `itemsize` bytes per element; parameters their own
    `data.nbytes`; a `Conv2d` with weight `(O, C, kh, kw)` adds `C*kh*kw` numbers per
    output position, twice (im2col writes them, the product reads them), where the
    positions are the output's elements divided by `O`.
    """
    check_int("itemsize", itemsize, 1)
    ### BEGIN SOLUTION
    elements = int(np.prod(input_shape)) + int(np.prod(output_shape))
    if isinstance(layer, Conv2d):
        out_channels, c, kh, kw = layer.weight.shape
        positions = int(np.prod(output_shape)) // out_channels
        elements += 2 * c * kh * kw * positions
    return elements * itemsize + sum(p.data.nbytes for p in layer.parameters())
    ### END SOLUTION


@dataclass(frozen=True)
class LayerIntensity:
    """One layer call: its FLOPs, the bytes it moves, and their ratio."""

    name: str
    kind: str
    flops: int
    nbytes: int

    @property
    def intensity(self) -> float:
        """FLOPs per byte."""
        return self.flops / self.nbytes


def layer_intensities(model: Module, input_shape: tuple[int, ...]) -> list[LayerIntensity]:
    """FLOPs, bytes and intensity of every layer of a (nested) Sequential on one input batch.

    The model runs once on zeros of `input_shape`, in its current mode, without gradients.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: `input_shape` is not a tuple of ints >= 1, or the model is not Sequential.
    """
    layers = sequential_layers(model)
    x = Tensor(np.zeros(check_shape("input_shape", input_shape), dtype=np.float32))
    rows = []
    with no_grad():
        for name, layer in layers:
            out = layer(x)
            rows.append(LayerIntensity(name, type(layer).__name__, layer_flops(layer, x.shape, out.shape),
                                       layer_bytes(layer, x.shape, out.shape)))
            x = out
    return rows


# %% nbgrader={"grade": true, "grade_id": "test-layer-bytes", "locked": true, "points": 2}
def test_unit_layer_bytes():
    """Task 18.4"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear

    assert layer_bytes(Linear(64, 10), (32, 64), (32, 10)) == 4 * (32 * 64 + 32 * 10 + 64 * 10 + 10)
    assert layer_bytes(ReLU(), (5, 7), (5, 7)) == 4 * 70
    conv = Conv2d(8, 16, 3, padding=1)  # on 4x4 maps: 2 * 4 * 4 = 32 positions for a batch of 2
    expected = 4 * (2 * 8 * 16 + 2 * 16 * 16 + 2 * 72 * 32) + 4 * (16 * 72 + 16)
    assert layer_bytes(conv, (2, 8, 4, 4), (2, 16, 4, 4)) == expected
    rows = layer_intensities(Sequential(Linear(4, 3), ReLU()), (2, 4))
    assert [(r.kind, r.flops) for r in rows] == [("Linear", 2 * 2 * 4 * 3), ("ReLU", 0)]


# %%
if __name__ == "__main__":
    test_unit_layer_bytes()

# %% [markdown]
# ### Measure it: the digits models under the roof
#
# The two networks of the course (Module 09's `tinytorch.recipes`, random weights: speed
# does not care about accuracy), at a serving batch of 256 digits: the MLP
# 64-128-64-10 and the CNN (Conv 1->8, ReLU, MaxPool, Conv 8->16, ReLU, MaxPool,
# Flatten, Linear 64->10). For each layer: FLOPs, bytes, intensity, which bound holds
# (intensity against the ridge), the time the roofline allows (`Roofline.seconds`, from
# memory and from cache), and the measured time, each layer timed alone on its real
# input with one BLAS thread. The plot puts each layer that does FLOPs at its intensity
# and measured FLOP/s, under both roofs.

# %%
from tinytorch.recipes import digits_cnn, digits_mlp  # the course's two networks (Module 09's given code)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    return plt


def _layer_timings(model, x, repeats):
    """Each layer of `model` timed on its own input: one `Timing` per layer, one BLAS thread."""
    model.eval()
    inputs, h = [], x
    with no_grad():
        for _, layer in sequential_layers(model):
            inputs.append(h)
            h = layer(h)
        return _timed([lambda f=layer, a=a: f(a) for (_, layer), a in zip(sequential_layers(model), inputs)],
                      repeats=repeats)


def analysis_layer_roofline(roof, cache_roof, batch=256):
    """Every layer of the digits MLP and CNN: intensity, bound, roofline time and measured time."""
    repeats = 2 if QUICK else 9
    nets = [("digits MLP", digits_mlp(), (batch, 64)), ("digits CNN", digits_cnn(), (batch, 1, 8, 8))]
    found = []
    for title, model, shape in nets:
        rows = layer_intensities(model, shape)
        timings = _layer_timings(model, Tensor(np.random.default_rng(0).standard_normal(shape)), repeats)
        print(f"\n{title}, batch {batch}; measured = median of {repeats} rounds, spread = their range / median")
        print(f"{'layer':<11}{'MFLOP':>8}{'KB':>8}{'FLOP/B':>8}{'bound':>8}{'roof us':>9}{'cache us':>9}"
              f"{'meas. us':>10}{'spread':>7}{'x roof':>8}")
        for r, t in zip(rows, timings):
            bound = "memory" if r.intensity < roof.ridge else "compute"
            best, best_cache = roof.seconds(r.flops, r.nbytes), cache_roof.seconds(r.flops, r.nbytes)
            print(f"{r.name + ' ' + r.kind:<11}{r.flops / 1e6:>8.2f}{r.nbytes / 1e3:>8.0f}{r.intensity:>8.2f}"
                  f"{bound:>8}{1e6 * best:>9.1f}{1e6 * best_cache:>9.1f}{1e6 * t.median:>10.1f}{t.spread:>7.0%}"
                  f"{t.median / best_cache:>7.1f}x")
            found.append((title, r, t.median))
    _plot_roofline(roof, cache_roof, found)
    return found


def _plot_roofline(roof, cache_roof, found):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.logspace(-2, 3, 200)
    ax.plot(xs, roof.attainable(xs) / 1e9, "k-", label=f"memory roof ({roof.bandwidth / 1e9:.0f} GB/s)")
    ax.plot(xs, cache_roof.attainable(xs) / 1e9, "k--", label=f"cache roof ({cache_roof.bandwidth / 1e9:.0f} GB/s)")
    for (title, r, t), marker in zip(found, ["o"] * len(found)):
        if r.flops:
            ax.plot(r.intensity, r.flops / t / 1e9, "s" if "CNN" in title else "o",
                    color="tab:blue" if "CNN" in title else "tab:orange")
            ax.annotate(f"{title.split()[-1]} {r.name} {r.kind}", (r.intensity, r.flops / t / 1e9), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOPs per byte)", ylabel="GFLOP/s",
           title="The digits models on this machine's roofline (one thread)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(PLOTS / "roofline.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    LAYERS = analysis_layer_roofline(ROOF, CACHE_ROOF)

# %% [markdown]
# **Reading the results.** Look at the `FLOP/B` column first. The MLP's two large
# Linear layers at batch 256 reuse each weight 256 times and land at about 18 FLOPs per
# byte: right of the ridge, compute-bound on paper. Yet they take 1.2-1.3x the roof's
# time, because a `256x64 @ 64x128` product is too small for OpenBLAS to reach the peak
# it reaches on `1024x1024`. The CNN's convolutions
# sit at 1.3 and 3.4 FLOPs per byte, left of the memory ridge: the im2col columns
# dominate their traffic. ReLU, pooling and Flatten do no useful arithmetic at all.
#
# Then the `x roof` column: how many times longer each layer took than the cache
# roofline allows. These models are small enough to live in the caches, so the cache
# roof is the fair one. Large factors are the rule on small layers: every call pays some
# microseconds of Python and NumPy bookkeeping (creating a Tensor, checking shapes,
# recording the backward) that no roofline counts. A layer measured *below* its roof
# time (a factor under 1) would mean the byte count is wrong or the timer is; the roof
# is a bound, and nothing legitimately beats it. Flatten shows how close that comes:
# its factor is near 1 because it moves *no* bytes at all (a reshape is a view), and
# our count charges it for an input and an output; its few microseconds are the call.
#
# What this says about speed from pruning: on these models, removing FLOPs alone buys
# little. A layer that waits on memory or on bookkeeping gets faster only when the bytes
# or the calls go away too. Questions: which of the CNN's layers takes the largest share
# of the time, and is it one with FLOPs? At what batch size would the MLP's middle layer
# cross the memory ridge (use `matmul_intensity`)?

# %% [markdown]
# ## 3. CSR: storing and multiplying only the non-zeros
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
# Put CSR on the roofline before timing it. Each stored weight costs 4 bytes of value
# and 8 of index (12 instead of 4), and it is used for 2 FLOPs per batch row, against
# an input read through the index, in no predictable order. At batch 1 a dense
# `Linear(1024, 1024)` reads 4 MB of weights for 2 MFLOP (0.5 FLOP per byte, deep on
# the memory slope): CSR at 90% sparsity reads 1.2 MB instead, so it *can* be up to
# 3.3x faster, no more. At batch 64 the dense product reuses each weight 64 times
# and climbs towards the flat roof, while the CSR kernel still walks its indices: the
# crossover moves to higher sparsity.
#
# `SparseLinear` is for **inference only**: it has no trainable parameters, so a
# training loop could not update its weights. Rather than stay silently frozen, its
# forward pass raises in training mode with gradients on; gradients do flow through it
# to its input. Prune and fine-tune the dense model (masks attached), then convert.
#
# `to_sparse(model, min_sparsity, batch_size)` times every sufficiently sparse Linear
# both ways on its real weights at the batch size you will serve (`plan_sparse`), and
# swaps in a SparseLinear only where it was measured faster.
#
# A small example fixes the layout. The weight
#
#     [[0, 2, 0, 3],
#      [0, 0, 0, 0],
#      [4, 0, 0, 5]]
#
# has `values = [2, 3, 4, 5]`, `indices = [1, 3, 0, 3]` and `indptr = [0, 2, 2, 4]`: row
# 0 owns entries 0-1, row 1 none (its start equals its end), row 2 entries 2-3. For an
# input row `x`, output 0 is `2*x[1] + 3*x[3]`, output 1 is 0 and output 2 is
# `4*x[0] + 5*x[3]`. The tasks, in order:
#
# - *18.5* `to_csr`: the three arrays from a dense weight (`np.nonzero` lists the
#   non-zeros row by row; counting them per row gives `indptr` by a cumulative sum).
# - *18.6* `csr_matmul`: the product above for a whole batch, with the two traps (empty
#   rows, chunks of the batch).
# - *18.7* `SparseLinear.forward`: the layer around the kernels, with a backward pass
#   that multiplies the output gradient by the weight, so gradients reach the input.
# - *18.8* `to_sparse`: check the plan against the model, copy the model, swap in a
#   `SparseLinear` where the plan measured CSR faster.
#
# `SparseChoice` (one layer's measurement) and `crossover_sparsity` are given code in
# `measuring_given.py`.

# %% nbgrader={"grade": false, "grade_id": "sparse", "solution": true}
#| export acceleration.sparse
"""The CSR format and its matmul, SparseLinear, and swapping in a sparse layer only where it was measured faster (Module 18)."""
import copy
from collections.abc import Callable, Sequence
import numpy as np

from tinytorch.acceleration.backends import SparseChoice, check_backend, linear_layers, scipy_sparse, swap_module
from tinytorch.core.autograd import is_grad_enabled, no_grad
from tinytorch.core.checks import check_fraction, check_instance, check_int
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import time_interleaved

# NOTE: csr_matmul builds a (rows of x) x nnz product array; chunks of the batch keep it
# near this many elements (4 MB in float32) instead of gigabytes for a large batch.
_CHUNK_ELEMENTS = 1 << 20


def to_csr(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR form of a 2-D array: `(values, column indices, row pointers)`. Task 18.5

    Row i's non-zeros are `values[indptr[i]:indptr[i+1]]`, in columns
    `indices[indptr[i]:indptr[i+1]]` (increasing); `indptr` has rows + 1 entries.
    Indices and pointers are int64.

    Raises:
        ValueError: `weight` is not 2-D.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    ### BEGIN SOLUTION
    rows, cols = np.nonzero(weight)  # row-major order: each row's entries come together
    indptr = np.zeros(weight.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=weight.shape[0]), out=indptr[1:])
    return weight[rows, cols], cols.astype(np.int64), indptr
    ### END SOLUTION


def csr_matmul(values: np.ndarray, indices: np.ndarray, indptr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x @ W.T` for `x (B, in)` and `W (rows, in)` given in CSR form, with NumPy only. Task 18.6

    Gather the input each stored weight meets, multiply, and sum each row's products
    with `np.add.reduceat`: work in proportion to the non-zeros, not to rows x in.
    Mind the empty rows, and go through the batch in chunks of about
    `_CHUNK_ELEMENTS // nnz` rows.

    Args:
        values, indices, indptr: `W` in CSR form (see `to_csr`).
        x: a 2-D batch of inputs.

    Returns:
        `(B, rows)` array.
    """
    rows = indptr.size - 1
    out = np.zeros((x.shape[0], rows), dtype=np.result_type(x.dtype, values.dtype))
    ### BEGIN SOLUTION
    starts = indptr[:-1]
    filled = starts < indptr[1:]
    if not filled.any():
        return out
    # NOTE: reduceat gives an empty segment the single element at its start, not 0, so
    # only the rows that hold entries are reduced (each up to the next one's start).
    starts = starts[filled]
    step = max(1, _CHUNK_ELEMENTS // values.size)
    for lo in range(0, x.shape[0], step):
        # NOTE: np.take along axis 1 gathers several times faster than x[:, indices].
        products = np.take(x[lo:lo + step], indices, axis=1).astype(out.dtype, copy=False)
        products *= values
        out[lo:lo + step, filled] = np.add.reduceat(products, starts, axis=1)
    ### END SOLUTION
    return out


class SparseLinear(Module):
    """y = x W^T + b with `W` stored and multiplied in CSR form: a Linear for inference only.

    It has no trainable parameters: its weights cannot learn. Gradients do flow to its
    input (in eval mode), but a forward pass in training mode with gradients on raises,
    so a training loop cannot leave it silently frozen. It starts in eval mode.
    Fine-tune the dense model (with its masks attached), then convert it. Its arrays
    are plain ndarrays, not Tensors, so `state_dict()` leaves them out: save the
    dense model (or `save_compressed`) and convert after loading.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None, backend: str | None = None) -> None:
        """Store `weight (out_features, in_features)` in CSR form and a copy of `bias (out_features,)`.

        Args:
            weight: the dense weight; its exact zeros are not stored.
            bias: the bias, or None.
            backend: "scipy" (compiled CSR kernels), "numpy" (`csr_matmul`), or None for
                scipy when it is installed.

        Raises:
            ValueError: `weight` is not 2-D, `bias` has the wrong shape, or an unknown backend.
        """
        super().__init__()
        self.backend = check_backend(backend)
        self.values, self.indices, self.indptr = to_csr(weight)
        self.out_features, self.in_features = np.shape(weight)
        if bias is not None and np.shape(bias) != (self.out_features,):
            raise ValueError(f"bias must have shape ({self.out_features},), got {np.shape(bias)}")
        self.bias = None if bias is None else np.array(bias, dtype=self.values.dtype)
        self._csr: dict[bool, object] = {}  # transposed? -> the form the backend multiplies
        self.training = False

    @classmethod
    def from_linear(cls, linear: Linear, backend: str | None = None) -> "SparseLinear":
        """A SparseLinear computing what `linear` computes, from its current weights."""
        check_instance("linear", linear, Linear, "a Linear")
        bias = None if linear.bias is None else linear.bias.data
        return cls(linear.weight.data, bias, backend)

    @property
    def nnz(self) -> int:
        """How many weights are stored (the non-zeros)."""
        return int(self.values.size)

    @property
    def sparsity(self) -> float:
        """The fraction of the dense weight that is zero (not stored)."""
        return 1.0 - self.nnz / (self.out_features * self.in_features)

    @property
    def nbytes(self) -> int:
        """Bytes held: values, column indices, row pointers and bias."""
        arrays = (self.values, self.indices, self.indptr) + (() if self.bias is None else (self.bias,))
        return int(sum(a.nbytes for a in arrays))

    def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """FLOPs of one forward pass (Module 14's `count_flops` asks): 2 per stored weight per input row."""
        return 2 * self.nnz * int(np.prod(input_shape[:-1], dtype=np.int64))

    def to_dense(self) -> np.ndarray:
        """The dense `(out_features, in_features)` weight."""
        dense = np.zeros((self.out_features, self.in_features), dtype=self.values.dtype)
        rows = np.repeat(np.arange(self.out_features), np.diff(self.indptr))
        dense[rows, self.indices] = self.values
        return dense

    def _operand(self, transposed: bool) -> object:
        """W (or W^T, for the input gradient) in the form the backend multiplies; built once."""
        if transposed not in self._csr:
            if self.backend == "scipy":
                shape = (self.out_features, self.in_features)
                matrix = scipy_sparse.csr_matrix((self.values, self.indices, self.indptr), shape=shape)
                self._csr[transposed] = matrix.T.tocsr() if transposed else matrix
            else:
                self._csr[transposed] = to_csr(self.to_dense().T) if transposed else (
                    self.values, self.indices, self.indptr)
        return self._csr[transposed]

    def _multiply(self, x2d: np.ndarray, transposed: bool = False) -> np.ndarray:
        """`x2d @ W.T` (or `x2d @ W` with `transposed=True`) through the backend."""
        operand = self._operand(transposed)
        if self.backend == "numpy":
            return csr_matmul(*operand, x2d)
        if x2d.shape[0] == 1:
            return (operand @ x2d[0])[None, :]
        # NOTE: scipy multiplies a C-ordered (in, B) block fastest; x.T alone would be F-ordered.
        return np.ascontiguousarray((operand @ np.ascontiguousarray(x2d.T)).T)

    def forward(self, x: Tensor) -> Tensor:
        """Compute x W^T + b for `x (..., in_features)`; the gradient reaches `x`, never the weights. Task 18.7

        Use `self._multiply` on `x` flattened to 2-D, add the bias, restore the leading
        shape; the backward multiplies the output gradient by W (`transposed=True`).
        Return `Tensor.from_op(out, (x,), backward, op="sparse_linear")`.

        Raises:
            TypeError: `x` is not a Tensor.
            ValueError: the last dimension of `x` is not `in_features`.
            RuntimeError: training mode with gradients on (the weights cannot be trained).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"SparseLinear expects a Tensor, got {type(x).__name__}")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"SparseLinear({self.in_features}, {self.out_features}) needs input of shape "
                             f"(..., {self.in_features}), got {x.shape}")
        if self.training and is_grad_enabled():
            raise RuntimeError(
                "SparseLinear is inference-only: its CSR weights get no gradients, so training would leave "
                "them frozen. Fine-tune the dense model (masks attached), then convert it; run this one in "
                "eval mode (model.eval()) or under no_grad()")
        ### BEGIN SOLUTION
        out = self._multiply(x.data.reshape(-1, self.in_features))
        if self.bias is not None:
            out += self.bias
        out = out.reshape(x.shape[:-1] + (self.out_features,))

        def backward(grad: np.ndarray) -> tuple[np.ndarray]:
            gx = self._multiply(grad.reshape(-1, self.out_features), transposed=True)
            return (gx.reshape(x.shape),)

        return Tensor.from_op(out, (x,), backward, op="sparse_linear")
        ### END SOLUTION

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz} "
                f"({self.sparsity:.1%} sparse), bias={self.bias is not None}, backend={self.backend!r}")


def plan_sparse(model: Module, min_sparsity: float = 0.5, batch_size: int = 1, backend: str | None = None,
                repeats: int = 7, timer: Callable[..., list[float]] | None = None) -> list[SparseChoice]:
    """For each Linear of `model`: its sparsity and, from `min_sparsity` on, dense vs CSR time.

    Both forms are timed on the layer's own weights and a random `(batch_size,
    in_features)` input, interleaved, in eval mode without gradients.

    Args:
        model: the model (not changed).
        min_sparsity: layers sparser than this are timed, in [0, 1].
        batch_size: rows of the timing input, >= 1.
        backend: as for `SparseLinear`.
        repeats: timing rounds per layer.
        timer: `timer(fns, repeats=...) -> seconds per call`; default Module 14's
            `time_interleaved` on the CPU clock, one BLAS thread.

    Returns:
        One `SparseChoice` per Linear, in model order.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: `min_sparsity` outside [0, 1], `batch_size` < 1, an unknown backend.
    """
    layers = linear_layers(model)
    check_fraction("min_sparsity", min_sparsity, include_one=True)
    check_int("batch_size", batch_size, 1)
    backend = check_backend(backend)
    if timer is None:  # one BLAS thread (time_interleaved holds it): CPU time is the latency
        def timer(fns, repeats):
            return time_interleaved(fns, repeats=repeats, clock="cpu")
    rng = np.random.default_rng(0)
    choices = []
    for name, layer in layers:
        w = layer.weight.data
        sparsity = 1.0 - np.count_nonzero(w) / w.size
        if sparsity < min_sparsity:
            choices.append(SparseChoice(name, w.shape, sparsity))
            continue
        sparse = SparseLinear.from_linear(layer, backend)
        x = Tensor(rng.standard_normal((batch_size, w.shape[1])).astype(w.dtype))
        was_training = layer.training
        layer.eval()
        try:
            with no_grad():
                dense_s, sparse_s = timer([lambda: layer(x), lambda: sparse(x)], repeats=repeats)
        finally:
            layer.train(was_training)
        choices.append(SparseChoice(name, w.shape, sparsity, dense_s, sparse_s))
    return choices


def to_sparse(model: Module, min_sparsity: float = 0.5, batch_size: int = 1, backend: str | None = None,
              plan: Sequence[SparseChoice] | None = None) -> Module:
    """A copy of `model`, in eval mode, with a SparseLinear wherever CSR was measured faster. Task 18.8

    Only Linear layers at least `min_sparsity` sparse are considered, and each one is
    swapped only when its CSR form ran faster than the dense one at `batch_size`
    (`plan_sparse`). The crossover depends on the batch size and the machine, so it is
    measured, not assumed. The copy is for inference (see `SparseLinear`). A plan that
    names a layer the model lacks, or with another shape, raises before anything is copied.

    Args:
        model: the model (not changed).
        min_sparsity: as for `plan_sparse`.
        batch_size: the batch size the copy will serve.
        backend: as for `SparseLinear`.
        plan: the result of `plan_sparse(model, ...)`, to reuse its measurements.

    Returns:
        The new model (a SparseLinear when `model` is itself a Linear that was swapped).

    Raises:
        TypeError: `model` is not a Module.
        ValueError: bad `min_sparsity`, `batch_size` or backend, or a plan for other layers.
    """
    layers = dict(linear_layers(model))
    ### BEGIN SOLUTION
    if plan is None:
        plan = plan_sparse(model, min_sparsity, batch_size, backend)
    wrong = [f"{c.name!r} {c.shape}" for c in plan
             if c.name not in layers or layers[c.name].weight.data.shape != tuple(c.shape)]
    if wrong:
        have = ", ".join(f"{n!r} {m.weight.data.shape}" for n, m in layers.items())
        raise ValueError(f"plan names Linear layers this model does not have: {', '.join(wrong)} (it has {have})")
    new = copy.deepcopy(model)
    replaced = new
    for choice in plan:
        if choice.use_sparse:
            copied = dict(new.named_modules())[choice.name]
            sparse = SparseLinear.from_linear(copied, backend)
            if choice.name == "":
                replaced = sparse
            else:
                swap_module(new, choice.name, sparse)
    ### END SOLUTION
    return replaced.eval()


# %% nbgrader={"grade": true, "grade_id": "test-to-csr", "locked": true, "points": 1}
def test_unit_to_csr():
    """Task 18.5"""
    w = np.array([[0, 2, 0, 3], [0, 0, 0, 0], [4, 0, 0, 5]], dtype=np.float32)
    values, indices, indptr = to_csr(w)
    np.testing.assert_array_equal(values, [2, 3, 4, 5])
    np.testing.assert_array_equal(indices, [1, 3, 0, 3])
    np.testing.assert_array_equal(indptr, [0, 2, 2, 4])


# %% nbgrader={"grade": true, "grade_id": "test-csr-matmul", "locked": true, "points": 2}
def test_unit_csr_matmul():
    """Task 18.6"""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0.0
    w[3] = 0.0  # an empty row
    x = rng.standard_normal((4, 9)).astype(np.float32)
    np.testing.assert_allclose(csr_matmul(*to_csr(w), x), x @ w.T, atol=1e-5)


# %% nbgrader={"grade": true, "grade_id": "test-sparse-linear", "locked": true, "points": 2}
def test_unit_sparse_linear():
    """Task 18.7"""
    from tinytorch.compression import magnitude_prune
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

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
    """Task 18.8"""
    from tinytorch.compression import magnitude_prune
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

    manual_seed(3)
    model = Sequential(Linear(16, 32), ReLU(), Linear(32, 4))
    magnitude_prune(model, 0.9)
    plan = [SparseChoice("0", (32, 16), 0.9, 2e-6, 1e-6), SparseChoice("2", (4, 32), 0.9, 1e-6, 2e-6)]
    fast = to_sparse(model, plan=plan)  # the plan says: CSR wins for layer 0 only
    assert isinstance(fast[0], SparseLinear) and isinstance(fast[2], Linear) and isinstance(model[0], Linear)
    x = Tensor(np.random.default_rng(3).standard_normal((5, 16)))
    model.eval()
    np.testing.assert_allclose(fast(x).data, model(x).data, atol=1e-5)


# %%
if __name__ == "__main__":
    test_unit_to_csr()
    test_unit_csr_matmul()
    test_unit_sparse_linear()
    test_unit_to_sparse()

# %% [markdown]
# ### Measure it: when do zeros become speed?
#
# Two measurements, each timed in interleaved rounds (every variant once per round,
# medians over rounds, one BLAS thread), so a busy moment of the machine slows all
# variants alike:
#
# 1. one `Linear(1024, 1024)`, dense matmul against CSR across sparsity 50-99%, at
#    batch 1 and batch 64, with the crossover marked (`csr_crossover.png`);
# 2. an MLP 512-1024-1024-10 pruned to 90% unstructured sparsity: latency dense, pruned
#    (still a dense matmul) and after `to_sparse`, at the same two batch sizes.
#
# Next to each speedup the table prints the most the byte count allows: the dense
# weight's bytes over the CSR arrays' bytes. At batch 1 both products are on the memory
# slope, so CSR faster than that would be a measurement to distrust.

# %%
def _wide_mlp(width: int, seed: int = 0):
    """MLP 512-width-width-10 with random weights."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(512, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 10))


def _eval_timings(models, x, repeats):
    """Each model's forward pass on x in interleaved rounds (`Timing`s), eval mode, no graph."""
    for m in models:
        m.eval()
    with no_grad():
        return _timed([lambda m=m: m(x) for m in models], repeats=repeats)


def _plain_log_y(ax, label: str, title: str) -> None:
    """A log y axis with plain numbers (0.5, 2, 10) as tick labels."""
    from matplotlib.ticker import FuncFormatter

    ax.set(yscale="log", ylabel=label, title=title)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


from tinytorch.acceleration.backends import crossover_sparsity  # given code (measuring_given.py)


def analysis_csr_crossover(sparsities=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99), batches=(1, 64)):
    """Dense vs CSR time of one Linear layer across sparsity, per batch size, with the crossover."""
    from tinytorch.compression import magnitude_prune
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

    size, repeats = (256, 2) if QUICK else (1024, 9)
    sparsities = (0.5, 0.9, 0.99) if QUICK else sparsities
    manual_seed(0)
    layer = Linear(size, size)
    weights = layer.weight.data.copy()
    rng = np.random.default_rng(0)
    results, checks, byte_ratio = {b: [] for b in batches}, {b: [] for b in batches}, []
    for s in sparsities:
        np.copyto(layer.weight.data, weights)
        magnitude_prune(Sequential(layer), s)
        sparse = SparseLinear.from_linear(layer)
        byte_ratio.append(layer.weight.data.nbytes / sparse.nbytes)
        for b in batches:
            x = Tensor(rng.standard_normal((b, size)))
            dense_t, csr_t = _eval_timings([layer, sparse], x, repeats)
            results[b].append((dense_t.median, csr_t.median))
            # less work of either kind, FLOPs (size^2 / nnz) or bytes, cannot explain more than its ratio
            work = max(byte_ratio[-1], layer.weight.data.size / max(sparse.nnz, 1))
            checks[b].append(compare_timings(dense_t, csr_t, work_ratio=work))
    backend = sparse.backend
    print(f"Linear({size}, {size}): dense vs CSR ({backend}), us per forward pass (medians of {repeats} rounds); "
          "bytes = dense / CSR weight bytes")
    print(f"{'sparsity':>9}{'bytes':>7}" + "".join(f"{f'dense b={b}':>12}{f'CSR b={b}':>11}{'x':>7}  " for b in batches))
    for i, s in enumerate(sparsities):
        print(f"{s:>9.0%}{byte_ratio[i]:>6.1f}x" + "".join(
            f"{1e6 * results[b][i][0]:>12.1f}{1e6 * results[b][i][1]:>11.1f}"
            f"{checks[b][i].ratio:>6.2f}x{_flag(checks[b][i])}" for b in batches))
    _print_flags({f"{s:.0%}, batch {b}": checks[b][i] for b in batches for i, s in enumerate(sparsities)})
    crossings = {b: crossover_sparsity(sparsities, [d for d, _ in results[b]], [c for _, c in results[b]])
                 for b in batches}
    for b, c in crossings.items():
        print(f"batch {b}: CSR is faster from " + ("-- (never, in this range)" if c is None else f"{c:.1%} sparsity"))
    _plot_crossover(size, backend, sparsities, results, crossings)
    return results, crossings


def _print_flags(checks) -> None:
    """Every flag raised in a table, with its row: the ratios not to build on."""
    for where, check in checks.items():
        for flag in check.flags:
            print(f"  ! {where}: {flag}")


def _plot_crossover(size, backend, sparsities, results, crossings):
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(10, 4), sharex=True)
    for ax, (b, rows) in zip(np.atleast_1d(axes), results.items()):
        xs = [100 * s for s in sparsities]
        ax.plot(xs, [1e6 * d for d, _ in rows], "o-", label="dense matmul")
        ax.plot(xs, [1e6 * c for _, c in rows], "s-", label=f"CSR ({backend})")
        if crossings[b] is not None:
            ax.axvline(100 * crossings[b], color="gray", linestyle=":", label=f"crossover {crossings[b]:.0%}")
        ax.set(xlabel="sparsity (%)")
        _plain_log_y(ax, "us per forward", f"Linear({size}, {size}), batch {b}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "csr_crossover.png", dpi=120)
    plt.close(fig)


def analysis_sparse_path(sparsity=0.9, batches=(1, 64)):
    """An MLP at 90% unstructured sparsity: latency dense, pruned (still dense), and with to_sparse."""
    from tinytorch.compression import magnitude_prune
    from tinytorch.profiling import count_flops

    width, repeats = (256, 2) if QUICK else (1024, 11)
    dense = _wide_mlp(width, seed=1)
    pruned = copy.deepcopy(dense)
    magnitude_prune(pruned, sparsity)
    rows = []
    for b in batches:
        plan = plan_sparse(pruned, min_sparsity=0.5, batch_size=b, repeats=repeats)
        fast = to_sparse(pruned, plan=plan)
        x = Tensor(np.random.default_rng(b).standard_normal((b, 512)))
        timings = _eval_timings([dense, pruned, fast], x, repeats)
        work = count_flops(dense, x.shape) / count_flops(fast, x.shape)
        rows.append((b, timings, compare_timings(timings[0], timings[2], work_ratio=work),
                     [c.name for c in plan if c.use_sparse]))
    print(f"MLP 512-{width}-{width}-10 at {sparsity:.0%} unstructured sparsity, us per forward pass "
          f"(median of {repeats} rounds, spread in brackets)")
    print(f"{'batch':>6}{'dense':>15}{'pruned':>15}{'to_sparse':>15}  {'speedup':<26} CSR layers")
    for b, timings, check, swapped in rows:
        cells = "".join(f"{f'{1e6 * t.median:.1f} ({t.spread:.0%})':>15}" for t in timings)
        print(f"{b:>6}{cells}  {f'{check.ratio:.2f}x (FLOPs {check.work_ratio:.1f}x)':<24}{_flag(check)} "
              f"{', '.join(swapped) or 'none'}")
    _print_flags({f"batch {b}": check for b, _, check, _ in rows})
    return rows


if __name__ == "__main__":
    CROSSOVER = analysis_csr_crossover()
    SPARSE_PATH = analysis_sparse_path()

# %% [markdown]
# **Reading the results.** At batch 1 the dense layer reads its whole weight to do 2
# FLOPs per weight, deep on the memory slope; CSR reads 12 bytes per *stored* weight
# instead of 4 per weight, so on bytes alone it should break even near two thirds
# sparsity (a third of the weights at three times the bytes) and be at most `bytes` times
# faster above that. Compare the `x` column with the `bytes` column: a speedup beyond the
# byte ratio would mean the dense time was inflated (by the machine's load, or by a first
# call), not that CSR is magic. With the fast kernels CSR broke even at 90.0-90.8%
# sparsity and reached 5.64-6.27x at 99%, where the bytes allow 30.4x: the gap is the
# price of CSR's indirect reads and of the per-call overhead, which a layer at 99%
# sparsity cannot spread over much work. Under Prescott's kernel the dense product is
# slower (its roof is lower, section 1), so CSR wins earlier, from 74.4% (Prescott), and
# reaches 16.31x (Prescott) at 99%: when zeros become speed depends on how good the dense
# kernel is.
#
# At batch 64 the dense product reuses each weight 64 times: its intensity rises about
# 60-fold, towards the flat roof. One would expect the crossover to move to a higher
# sparsity; it moved lower (78.5% under SkylakeX, 84.6% under Haswell), because scipy's
# kernel also reuses each stored weight across the batch (it walks a contiguous row of
# `x.T` per weight), and because the dense product of this shape stays well below the
# peak. Read the dense columns too: they time the same product at every sparsity, so
# their spread is the noise every ratio in the table carries. Rows marked `!` are those
# Module 14's `compare_timings` flagged: rounds that disagree by more than half the
# median, or a speedup beyond the work ratio. Do not build on a flagged row; run the cell
# again. The MLP table shows the other half of the answer: 90% zeros in a dense matmul buy
# nothing (the `pruned` column), since BLAS multiplies zeros as fast as any other number,
# while `to_sparse` put the large layers on CSR and ran the model 2.16-2.88x faster at
# batch 1 for 2.9x fewer FLOPs: below the work ratio, as it must be.
#
# So, when do zeros become speed on a CPU? From about 90% unstructured sparsity on layers
# large enough for the bytes to matter (earlier where the dense kernel is weak), by far
# less than the byte ratio, and only where `to_sparse` measured it.

# %% [markdown]
# ## 4. Where does the time go? Layer by layer
#
# A whole-model speedup hides which layers earned it. `compare_layer_times(before,
# after, x)` runs two models with the same layer sequence (the masked model and its
# smaller twin from Module 16's `remove_pruned_units`, say) one layer at a time, each
# layer on its own model's activations, and times layer i of both in the same
# interleaved rounds. Next to each layer's time ratio it puts the layer's FLOP ratio
# (Module 14's `layer_flops`), so a layer whose time shrinks less than its FLOPs stands
# out. It is given code (`measuring_given.py`), not a task: read it, then read its output.

# %%
from tinytorch.acceleration.layers import LayerTime, compare_layer_times  # given code (measuring_given.py)


def test_unit_compare_layer_times():
    """Each row names a layer and holds its FLOPs in both models, as Module 14 counts them."""
    from tinytorch.compression import remove_pruned_units, structured_prune
    from tinytorch.profiling import flops_by_layer

    model = digits_cnn()
    small = remove_pruned_units(model, structured_prune(model, 0.5))
    x = Tensor(np.random.default_rng(0).standard_normal((4, 1, 8, 8)))
    rows = compare_layer_times(model, small, x, repeats=1)
    assert [r.name for r in rows] == [name for name, _ in flops_by_layer(model, x.shape)]
    assert [r.before_flops for r in rows] == [f for _, f in flops_by_layer(model, x.shape)]
    assert [r.after_flops for r in rows] == [f for _, f in flops_by_layer(small, x.shape)]
    assert all(r.before_seconds > 0 and r.after_seconds > 0 for r in rows)
    try:
        compare_layer_times(model, Sequential(*list(small)[:-1]), x)
    except ValueError as e:
        assert "8 layers" in str(e) and "7" in str(e)
    else:
        raise AssertionError("layer sequences of different lengths must raise")


if __name__ == "__main__":
    test_unit_compare_layer_times()

# %% [markdown]
# ### Measure it: structured pruning, layer by layer
#
# The digits CNN at batch 256, and a CNN of CIFAR's shape (32 and 64 filters on 3x32x32
# images, batch 64), each with half of its units removed by Module 16's
# `structured_prune` and `remove_pruned_units`. A 3x3 convolution with C inputs and O
# outputs does 2 x 9C x O FLOPs per position on about (2 x 9C + O) x 4 bytes: halving
# both C and O quarters the FLOPs but only halves the bytes. The table shows each
# layer's speedup next to its FLOP ratio and its share of the time.

# %%
def _cifar_cnn(c1: int = 32, c2: int = 64, seed: int = 0):
    """The digits CNN's layers, wider, on 3x32x32 images."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear
    from tinytorch.core.spatial import Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Conv2d(3, c1, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(c1, c2, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(c2 * 64, 10))


def analysis_layer_times(ratio=0.5):
    """Each CNN layer's speedup after removal at `ratio`, next to its FLOP ratio."""
    from tinytorch.compression import remove_pruned_units, structured_prune

    repeats = 2 if QUICK else 9
    c1, c2, cifar_batch, batch = (8, 16, 8, 32) if QUICK else (32, 64, 64, 256)
    nets = [("digits CNN", digits_cnn(), (batch, 1, 8, 8)),
            (f"CIFAR-shaped CNN {c1}/{c2}", _cifar_cnn(c1, c2), (cifar_batch, 3, 32, 32))]
    tables = []
    for name, masked, shape in nets:
        small = remove_pruned_units(masked, structured_prune(masked, ratio))
        masked.eval()
        small.eval()
        rows = compare_layer_times(masked, small, Tensor(np.random.default_rng(0).standard_normal(shape)),
                                   repeats=repeats)
        tables.append((name, rows))
        print(f"\n{name} (batch {shape[0]}) at ratio {ratio}; share = the layer's part of the masked time")
        print(f"{'layer':<13}{'masked us':>11}{'removed us':>11}{'spread':>8}{'share':>7}{'speedup':>9}"
              f"{'FLOP ratio':>11}{'work ratio':>11}")
        total, after = sum(r.before_seconds for r in rows), sum(r.after_seconds for r in rows)
        for r in rows:
            flops = "-" if r.flop_ratio is None else f"{r.flop_ratio:.2f}x"
            spread = max(r.before.spread, r.after.spread)
            print(f"{r.name + ' ' + r.kind:<13}{1e6 * r.before_seconds:>11.1f}{1e6 * r.after_seconds:>11.1f}"
                  f"{spread:>8.0%}{r.before_seconds / total:>7.0%}{r.speedup:>8.2f}x{flops:>11}"
                  f"{r.work_ratio:>10.2f}x{_flag(r.check)}")
        print(f"{'all layers':<13}{1e6 * total:>11.1f}{1e6 * after:>11.1f}{'':>15}{total / after:>8.2f}x")
        _print_flags({f"layer {r.name} {r.kind}": r.check for r in rows})
    return tables


if __name__ == "__main__":
    LAYER_TABLES = analysis_layer_times()

# %% [markdown]
# **Reading the results.** Compare each convolution's speedup with its FLOP ratio of 4x.
# The digits CNN's second convolution (C = 8, O = 16) sits on the memory side of the ridge
# (section 2), and its time follows the bytes more than the FLOPs: 2.22-2.69x, not 4x. The
# CIFAR-shaped network's second convolution (C = 32, O = 64) does 4x as many FLOPs per
# byte, nearer the ridge, and its speedup comes closer to the FLOP ratio (2.66-3.75x). The
# first convolution copies its 1- or 3-channel input nine times whatever number of filters
# remains; ReLU and pooling do no multiply-adds at all and move memory in proportion to the
# channels (2x); and every layer call costs some microseconds of bookkeeping. So removal
# follows the FLOPs where layers are wide and the work is in matmuls, and falls short where
# layers are narrow: the roofline of section 1, read one layer at a time.
#
# One row deserves suspicion: the CIFAR-shaped network's first pooling layer ran
# 2.91-3.99x faster for a 2x work ratio, flagged in all three runs. Its input shrinks
# from 8 MB to 4 MB, from a size that spills out of the caches the other layers also use
# to one that stays in them: a second roof could explain part of it, but not a ratio that
# moves from 2.91x (Prescott) to 3.99x (Haswell) between runs. Module 14's
# `compare_timings` flags what goes beyond one and a half times the work ratio, or whose
# rounds disagree; a ratio beyond the work's own ratio is a measurement error until proven
# otherwise, so run it again before you build on it.

# %% [markdown]
# ## 5. Layout: the same work, arranged differently
#
# The roofline counts FLOPs and bytes; it does not say how the kernel walks them. Two
# arrangements of the same computation do the same FLOPs on the same bytes, so the
# roofline allows them the same time; any difference is the kernel's, and it must stay
# within what the roof allows: neither version may run faster than
# `Roofline.seconds(flops, bytes)`.
#
# 1. **The convolution's product.** Module 09's `Conv2d` computes `W @ cols`: a skinny
#    `(O, 9C)` weight times a wide `(9C, N*OH*OW)` column matrix, giving channels-first
#    output. The same numbers come out transposed from `cols.T @ W.T`, a tall-thin
#    product with channels last (the layout most CPU libraries prefer). For the digits
#    CNN's second convolution on a batch of 256 that is `16x72 @ 72x4096` against
#    `4096x72 @ 72x16`. Both orientations of the column matrix are timed: a transposed
#    view as NumPy gives it (`cols.T`, no copy) and a contiguous copy.
# 2. **ReLU.** `np.maximum(x, 0)` against a Python scalar, against a float32 scalar and
#    against an array of zeros of x's shape. The array version reads *more* bytes (the
#    zeros too), so on the roofline it can only be slower.

# %%
def analysis_layout(roof, memory_roof):
    """Two layout experiments, each variant against the roofline's bound (cache or memory) for its work."""
    repeats = 3 if QUICK else 11
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((16, 72), dtype=np.float32)
    cols = rng.standard_normal((72, 16 * 256), dtype=np.float32)
    cols_t = np.ascontiguousarray(cols.T)
    flops, nbytes = 2 * 16 * 72 * 4096, 4 * (16 * 72 + 72 * 4096 + 16 * 4096)
    conv = {"W @ cols (channels first)": lambda: weight @ cols,
            "cols.T @ W.T (view, channels last)": lambda: cols.T @ weight.T,
            "cols_t @ W.T (contiguous, channels last)": lambda: cols_t @ weight.T}
    experiments = [("conv product 16x72 @ 72x4096", conv, (flops, nbytes), roof)]
    for shape, level in (((256, 16, 8, 8), roof), ((16, 16, 32, 32) if QUICK else (256, 64, 32, 32), memory_roof)):
        h = rng.standard_normal(shape, dtype=np.float32)
        zeros = np.zeros_like(h)
        relu = {"np.maximum(x, 0)": lambda h=h: np.maximum(h, 0), "np.maximum(x, np.float32(0))":
                lambda h=h: np.maximum(h, np.float32(0)), "np.maximum(x, zeros)": lambda h=h, z=zeros: np.maximum(h, z)}
        experiments.append((f"ReLU on {'x'.join(map(str, shape))} ({h.nbytes >> 20} MB)", relu, (0, 2 * h.nbytes), level))
    results = {}
    for title, fns, work, level in experiments:
        timings = _timed(list(fns.values()), repeats=repeats)
        bound = level.seconds(*work)
        print(f"\n{title}: roofline bound {1e6 * bound:.1f} us ({work[0] / 1e6:.2f} MFLOP, {work[1] / 1e3:.0f} KB)")
        checks = {}
        for k, (name, t) in enumerate(zip(fns, timings)):
            check = compare_timings(timings[0], t, work_ratio=1.0)  # the same work, arranged differently
            if k:  # the first against itself says nothing
                checks[name] = check
            roof_flag = "  <- faster than the roof: distrust" if t.median < bound else ""
            print(f"  {name:<42}{1e6 * t.median:>9.1f} us ({t.spread:>4.0%})  {check.ratio:>5.2f}x the first"
                  f"{_flag(check) if k else '  '} {t.median / bound:>5.1f}x the bound{roof_flag}")
        _print_flags(checks)
        results[title] = dict(zip(fns, timings))
    return results


if __name__ == "__main__":
    LAYOUT = analysis_layout(CACHE_ROOF, ROOF)

# %% [markdown]
# **Reading the results.** The bound printed above each experiment uses the cache roof
# where the arrays fit in the caches and memory's roof for the 64 MB ReLU; the "x the
# bound" column says how far each variant stays from it.
#
# The convolution's product: through a transposed view, the channels-last product ran
# 0.69-0.73x as fast as `W @ cols` under the Haswell and Prescott kernels, and
# 1.37x under SkylakeX; the contiguous copy 0.70-2.00x, its top flagged as beyond the
# work. The three kernels disagree even on which layout wins, and every variant stayed
# within 1.0-2.4x of the roofline's bound. Both are the same FLOPs on the same bytes, within a few times of
# the roof, so no measurement is impossible; the difference is which matrix OpenBLAS's
# kernel for that shape likes to stream, and that depends on the library's version and the
# core. A layout claim is a claim about one library on one machine: measure it where it
# will run before rewriting a layer.
#
# ReLU: against a scalar, `0` or `np.float32(0)` alike, NumPy's `maximum` took 2.72-2.86x
# longer than against an array of zeros on the 1 MB batch, although the array version
# reads half again as many bytes. `compare_timings` flags it, rightly: a ratio beyond what
# the work allows (here, less than 1x) is a measurement error until proven otherwise. So
# check it against the roof: the scalar versions run 4.1-4.3x above their bound and the
# array version 1.4-1.5x above it. Nothing beats the roof; the scalar loop is simply slow.
# The 64 MB batch is the proof that the effect is real and the judge of its size: there
# memory's bandwidth caps everyone, and the ratio shrinks to 1.10-1.14x, towards what the
# bytes allow. (NumPy's loop for two contiguous arrays is vectorised; the one for an array
# and a broadcast scalar, in this version, much less so.) An operation far above its bound
# has room, and a layout change or another loop can find it; one at its bound has none.

# %% [markdown]
# ## Summary: when do zeros become speed?
#
# - **The machine** (section 1): a float32 matmul's peak, memory's and the cache's
#   bandwidth, and the ridge between them, in FLOPs per byte. Below the ridge a layer
#   waits on memory.
# - **The layers** (section 2, `roofline.png`): the digits models sit left of the ridge
#   or far below the roof; their time is bytes and per-call overhead more than FLOPs.
# - **Unstructured zeros** (section 3, `csr_crossover.png`): a dense matmul multiplies
#   zeros at full price. CSR stores 12 bytes per non-zero and pays from the measured
#   crossover on, at small batch sizes, by at most the byte ratio. `to_sparse` swaps a
#   layer only where it measured a gain.
# - **Structured zeros** (section 4): removing units shrinks FLOPs and bytes; wide
#   layers follow their FLOPs, narrow ones their bytes.
# - **Layout** (section 5): the same work arranged differently can differ several
#   times over; measure it, and check every speedup against the roofline's bound.
#
# Questions to answer from your own run:
#
# 1. Which layer of the digits CNN takes the largest share of its time, and where does
#    it sit in `roofline.png`? Would halving its FLOPs halve its time?
# 2. At what batch size would the MLP's middle Linear layer cross the memory ridge
#    (`matmul_intensity`)? Does the crossover of `csr_crossover.png` move the way the
#    roofline predicts between batch 1 and batch 64, and if not, why not?
# 3. Which of your rows did `compare_timings` flag, and did the flag go away when you
#    ran the cell again?
#
# Module 19 builds on this: it benchmarks whole models, compressed and accelerated,
# with the statistics a comparison needs.

# %%
def test_module():
    """Run every inline test of Module 18."""
    test_unit_matmul_intensity()
    test_unit_attainable_flops()
    test_unit_measure_roofline()
    test_unit_layer_bytes()
    test_unit_to_csr()
    test_unit_csr_matmul()
    test_unit_sparse_linear()
    test_unit_to_sparse()
    test_unit_compare_layer_times()


# %%
if __name__ == "__main__":
    test_module()
    print(f"Module 18: all inline tests passed; the analyses took {_time.perf_counter() - _start:.1f} s; "
          f"plots in {PLOTS}/")
