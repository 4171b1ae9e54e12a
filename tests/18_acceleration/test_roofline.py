"""Tasks 18.1-18.4: matmul intensity, the roofline, measuring it, and the bytes a layer moves."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.acceleration import (
    Roofline,
    attainable_flops,
    layer_bytes,
    layer_intensities,
    matmul_intensity,
    measure_roofline,
)
from tinytorch.acceleration import roofline as roofline_module
from tinytorch.core.layers import Linear
from tinytorch.core.spatial import Conv2d
from tinytorch.profiling import flops_by_layer
from tinytorch.recipes import digits_cnn

from .conftest import make_cnn

sizes = st.integers(1, 5000)


# ---- Task 18.1: FLOPs per byte of a matrix product ------------------------------------

@pytest.mark.task("18.1")
@given(m=sizes, k=sizes, n=sizes, itemsize=st.sampled_from([1, 2, 4, 8]))
def test_matmul_intensity_formula(m, k, n, itemsize):
    expected = 2 * m * k * n / (itemsize * (m * k + k * n + m * n))
    assert matmul_intensity(m, k, n, itemsize) == pytest.approx(expected, rel=1e-12)


@pytest.mark.task("18.1")
def test_matmul_intensity_square_and_bad_sizes():
    # square n: 2n^3 FLOPs on 3n^2 float32 numbers = n/6 FLOPs per byte
    for n in (6, 60, 1024):
        assert matmul_intensity(n, n, n) == pytest.approx(n / 6, rel=1e-12)
    # a matrix-vector product can never reach half a FLOP per float32 byte
    assert matmul_intensity(1, 4096, 4096) < 0.5
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        matmul_intensity(3, 0, 3)
    with pytest.raises(ValueError, match="itemsize must be an int >= 1, got True"):
        matmul_intensity(3, 3, 3, itemsize=True)


# ---- Task 18.2: the roofline ----------------------------------------------------------

@pytest.mark.task("18.2")
@given(intensity=st.floats(0, 1e4), peak=st.floats(1e6, 1e12), bandwidth=st.floats(1e6, 1e11))
def test_attainable_is_the_lower_of_the_two_roofs(intensity, peak, bandwidth):
    got = attainable_flops(intensity, peak, bandwidth)
    assert got == pytest.approx(min(peak, intensity * bandwidth), rel=1e-12)
    assert got <= peak * (1 + 1e-12)


@pytest.mark.task("18.2")
def test_attainable_on_arrays_and_the_ridge():
    roof = Roofline(peak_flops=60e9, bandwidth=15e9)
    xs = np.array([0.5, 4.0, 100.0])
    np.testing.assert_allclose(roof.attainable(xs), [7.5e9, 60e9, 60e9], rtol=1e-12)
    assert roof.ridge == 4.0 and roof.attainable(roof.ridge) == pytest.approx(60e9)
    # a memory-bound piece of work: its bytes set the time
    assert roof.seconds(flops=1e6, nbytes=15e6) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="intensity must be >= 0"):
        attainable_flops(-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="bandwidth must be a number > 0, got 0"):
        attainable_flops(1.0, 1.0, 0)


# ---- Task 18.3: measuring the roofline ------------------------------------------------

class FakeTimer:
    """Runs each function once (so their work is real) and reports known seconds."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, []

    def __call__(self, fns, repeats):
        self.calls.append((len(fns), repeats))
        results = [fn() for fn in fns]
        self.results = results
        return list(self.seconds)


@pytest.mark.task("18.3")
@pytest.mark.parametrize("size,nbytes", [(8, 4096), (32, 1 << 16), (5, 400)])
def test_measure_roofline_arithmetic(size, nbytes):
    timer = FakeTimer([0.002, 0.0005])
    roof = measure_roofline(size=size, nbytes=nbytes, repeats=3, timer=timer)
    assert timer.calls == [(2, 3)], "one call of timer with both functions and the repeats"
    assert roof.peak_flops == pytest.approx(2 * size ** 3 / 0.002, rel=1e-12)
    assert roof.bandwidth == pytest.approx(2 * nbytes / 0.0005, rel=1e-12)  # read + write


@pytest.mark.task("18.3")
def test_measure_roofline_times_a_real_matmul_and_copy(monkeypatch):
    """The functions handed to the timer really multiply and copy what they should."""
    seen = {}

    def spy(fns, repeats):
        before = [np.array(a, copy=True) for a in ()]  # noqa: F841
        outs = [fn() for fn in fns]
        seen["outs"] = outs
        return [1.0, 1.0]

    measure_roofline(size=16, nbytes=256, repeats=1, timer=spy)
    product = seen["outs"][0]
    assert isinstance(product, np.ndarray) and product.shape == (16, 16) and product.dtype == np.float32
    real = measure_roofline(size=64, nbytes=1 << 16, repeats=1)  # the default timer, one BLAS thread
    assert np.isfinite(real.peak_flops) and real.peak_flops > 0 and np.isfinite(real.bandwidth)


@pytest.mark.task("18.3")
def test_measure_roofline_bad_inputs():
    with pytest.raises(ValueError, match="size must be an int >= 1, got 0"):
        measure_roofline(size=0)
    with pytest.raises(ValueError, match="nbytes must be at least 4"):
        measure_roofline(nbytes=2)
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 1.5"):
        measure_roofline(repeats=1.5)


# ---- Task 18.4: the bytes a layer moves ------------------------------------------------

@pytest.mark.task("18.4")
@pytest.mark.parametrize("bias", [True, False])
def test_layer_bytes_linear(bias):
    layer = Linear(64, 10, bias=bias)
    expected = 4 * (32 * 64 + 32 * 10) + 4 * 64 * 10 + (4 * 10 if bias else 0)
    assert layer_bytes(layer, (32, 64), (32, 10)) == expected
    assert layer_bytes(layer, (32, 64), (32, 10), itemsize=2) == 2 * (32 * 64 + 32 * 10) + expected - 4 * (
        32 * 64 + 32 * 10)


@pytest.mark.task("18.4")
@pytest.mark.parametrize("c,o,k,stride,padding", [(1, 8, 3, 1, 1), (8, 16, 3, 1, 1), (3, 4, 2, 2, 0)])
def test_layer_bytes_conv_counts_the_im2col_columns(c, o, k, stride, padding):
    conv = Conv2d(c, o, k, stride=stride, padding=padding)
    n, h = 3, 8
    oh = (h + 2 * padding - k) // stride + 1
    positions = n * oh * oh
    expected = 4 * (n * c * h * h + n * o * oh * oh + 2 * c * k * k * positions) + 4 * (o * c * k * k + o)
    assert layer_bytes(conv, (n, c, h, h), (n, o, oh, oh)) == expected


@pytest.mark.task("18.4")
def test_layer_intensities_of_a_cnn():
    model = make_cnn(channels=(4, 6))
    rows = layer_intensities(model, (5, 1, 8, 8))
    assert [r.flops for r in rows] == [f for _, f in flops_by_layer(model, (5, 1, 8, 8))]
    assert [r.kind for r in rows] == [type(layer).__name__ for layer in model]
    relu = rows[2]
    assert relu.kind == "ReLU" and relu.nbytes == 2 * 4 * 5 * 4 * 8 * 8 and relu.intensity == 0.0
    bn = rows[1]
    assert bn.nbytes == 2 * 4 * 5 * 4 * 8 * 8 + sum(p.data.nbytes for p in model[1].parameters())
    assert layer_intensities(model, [5, 1, 8, 8]) == rows  # a list reads like count_flops' shapes
    for bad in ((), (5, 0, 8, 8), (5, True, 8, 8), "5,1,8,8"):
        with pytest.raises(ValueError, match="input_shape must be a non-empty tuple of positive ints, got"):
            layer_intensities(model, bad)


def test_layer_intensities_of_the_digits_models_sit_left_of_a_typical_ridge():
    """Not a task: the lesson's claim that no digits CNN layer reaches 4 FLOPs per byte."""
    rows = layer_intensities(digits_cnn(seed=None), (256, 1, 8, 8))
    assert max(r.intensity for r in rows if r.kind == "Conv2d") < 4
    assert roofline_module.Roofline(1.0, 1.0).ridge == 1.0
