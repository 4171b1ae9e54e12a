"""Module 02, tasks 02.4-02.8: ReLU, Sigmoid, Tanh, GELU and Softmax against NumPy
formulas, PyTorch (where installed) and float64 finite differences; stability for
inputs up to |x| = 1e4; and GELU's stated accuracy (exact-erf form)."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core.activations import GELU, Module, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.tensor import Tensor, set_default_dtype
from gradients import closure_gradcheck

# Float32 outputs against float64 references (or PyTorch's float32): ~7 digits.
RTOL, ATOL = 1e-5, 1e-6

# (task, our module, the same function in PyTorch)
CASES = [
    ("02.4", ReLU, lambda torch, x: torch.relu(x)),
    ("02.5", Sigmoid, lambda torch, x: torch.sigmoid(x)),
    ("02.6", Tanh, lambda torch, x: torch.tanh(x)),
    ("02.7", GELU, lambda torch, x: torch.nn.functional.gelu(x)),  # default: exact erf
    ("02.8", Softmax, lambda torch, x: torch.softmax(x, dim=-1)),
]
PARAMS = [pytest.param(make, ref, id=make.__name__, marks=pytest.mark.task(task)) for task, make, ref in CASES]

floats = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(-30, 30, width=32))


def run(module: Module, x: np.ndarray, grad: np.ndarray | None = None):
    """Output data and input gradient of `module` at `x` (gradient of sum(grad * y)), from the op's closure."""
    y = module(Tensor(x, requires_grad=True))
    (grad_x,) = y._backward(np.ones_like(y.data) if grad is None else grad)
    return y.data, grad_x


@pytest.mark.parametrize("make, ref", PARAMS)
def test_matches_torch_values_and_gradients(make, ref):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for shape in [(7,), (4, 5), (2, 3, 6)]:
        x = (3 * rng.standard_normal(shape)).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(torch, xt)
        yt.backward(torch.tensor(g))
        y, grad = run(make(), x, g)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{make.__name__} {shape}")
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-4, atol=ATOL, err_msg=f"d{make.__name__} {shape}")


@pytest.mark.parametrize("make, ref", PARAMS)
def test_gradient_matches_finite_differences(make, ref):
    x = np.random.default_rng(1).standard_normal((3, 4)) * 2
    closure_gradcheck(make(), x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make, ref", PARAMS)
def test_large_inputs_do_not_overflow(make, ref):
    x = np.array([[-1e4, -1e3, -88.0, -1.0, 0.0, 1.0, 89.0, 1e3, 1e4]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, grad = run(make(), x)
    assert np.isfinite(y).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("make, ref", PARAMS)
def test_is_a_module_found_by_the_walk(make, ref):
    model = Module()
    model.act = make()
    assert model.modules()[1] is model.act and model.parameters() == []
    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    assert model.act(Tensor(x)).shape == (2, 3)


# --- per-activation properties and formulas ---------------------------------------------
@pytest.mark.task("02.4")
@given(floats)
def test_relu_is_max_with_zero_and_passes_grad_where_positive(x):
    y, grad = run(ReLU(), x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(grad, (x > 0).astype(np.float32))  # 0 at exactly x = 0


@pytest.mark.task("02.5")
@given(floats)
def test_sigmoid_symmetry_and_derivative(x):
    y, grad = run(Sigmoid(), x)
    y_neg, _ = run(Sigmoid(), -x)
    np.testing.assert_allclose(y + y_neg, 1.0, atol=1e-6)
    assert ((y >= 0) & (y <= 1)).all()
    reference = 0.5 * (1 + np.tanh(x.astype(np.float64) / 2))
    np.testing.assert_allclose(y, reference, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(grad, reference * (1 - reference), rtol=1e-4, atol=1e-7)


@pytest.mark.task("02.5")
def test_sigmoid_keeps_relative_precision_in_the_left_tail():
    # 1 / (1 + exp(80)) is about 1.8e-35: the stable form keeps it, not just "0".
    y, _ = run(Sigmoid(), np.array([-80.0], dtype=np.float32))
    np.testing.assert_allclose(y, [1 / (1 + math.exp(80))], rtol=1e-5)


@pytest.mark.task("02.6")
@given(floats)
def test_tanh_is_odd_and_matches_numpy(x):
    y, grad = run(Tanh(), x)
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), rtol=RTOL, atol=1e-7)
    np.testing.assert_array_equal(run(Tanh(), -x)[0], -y)
    np.testing.assert_allclose(grad, 1 - np.tanh(x.astype(np.float64)) ** 2, rtol=1e-4, atol=1e-6)


def exact_gelu(x: float) -> float:
    return x * 0.5 * math.erfc(-x / math.sqrt(2))


@pytest.mark.task("02.7")
def test_gelu_error_is_below_the_stated_bound_in_float64():
    """The erfc fit has a relative error < 1.2e-7; run in float64 so nothing else adds to it."""
    xs = np.linspace(-12, 12, 4001)
    previous = set_default_dtype(np.float64)
    try:
        y, grad = run(GELU(), xs)
    finally:
        set_default_dtype(previous)
    expected = np.array([exact_gelu(v) for v in xs])
    np.testing.assert_allclose(y, expected, rtol=1.2e-7, atol=1e-300)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xs])
    slope = cdf + xs * np.exp(-xs * xs / 2) / math.sqrt(2 * math.pi)
    # The slope crosses 0 near x = -0.75, so bound its error by the CDF's, not relatively.
    assert np.all(np.abs(grad - slope) <= 1.2e-7 * cdf + 1e-15), np.abs(grad - slope).max()


@pytest.mark.task("02.7")
def test_gelu_float32_is_within_float32_rounding_of_exact():
    xs = np.linspace(-9, 9, 2001).astype(np.float32)  # GELU(-9) ~ -1e-18: still a normal float32
    y, _ = run(GELU(), xs)
    expected = np.array([exact_gelu(v) for v in xs.astype(np.float64)])
    np.testing.assert_allclose(y, expected, rtol=2e-7, atol=0)


@pytest.mark.task("02.7")
def test_gelu_is_the_erf_form_not_the_tanh_approximation():
    x = np.array([-3.0, -1.5, 1.0], dtype=np.float32)
    y, _ = run(GELU(), x)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert np.abs(y - tanh_form).max() > 1e-5  # the two forms differ by ~1e-4 here
    np.testing.assert_allclose(y, [exact_gelu(v) for v in x.astype(np.float64)], rtol=2e-7)


@pytest.mark.task("02.8")
@given(floats, st.integers(0, 2))
def test_softmax_is_a_distribution_and_shift_invariant(x, dim):
    dim = dim % x.ndim
    y, grad = run(Softmax(dim=dim), x)
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=dim), 1.0, rtol=1e-5)
    np.testing.assert_allclose(run(Softmax(dim=dim), x + np.float32(7.0))[0], y, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad, 0.0, atol=1e-5)  # d(sum of probabilities)/dx = 0


@pytest.mark.task("02.8")
def test_softmax_along_each_dim_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
    g = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    for dim in (0, 1, 2, -1, -2):
        xt = torch.tensor(x, requires_grad=True)
        torch.softmax(xt, dim=dim).backward(torch.tensor(g))
        y, grad = run(Softmax(dim=dim), x, g)
        np.testing.assert_allclose(y, torch.softmax(torch.tensor(x), dim=dim).numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-4, atol=ATOL)
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)"


@pytest.mark.task("02.8")
def test_softmax_gradcheck_along_dim_0():
    x = np.random.default_rng(5).standard_normal((4, 3))
    closure_gradcheck(Softmax(dim=0), x, rtol=1e-6, atol=1e-8)


def test_no_grad_input_gives_a_constant_output():
    y = Sigmoid()(Tensor(np.zeros(3, dtype=np.float32)))
    assert not y.requires_grad


# ---- Softmax's dim: an int, checked when the layer is made; out of range for an input, said at forward ----

@pytest.mark.parametrize("dim, error", [(0.5, TypeError), ([0, 0], TypeError), (True, TypeError), ("1", TypeError),
                                        (None, TypeError), (64, ValueError), (-65, ValueError)])
def test_softmax_dim_must_be_an_int(dim, error):
    with pytest.raises(error, match=rf"dim must be an int >= -64 and <= 63, got {re.escape(repr(dim))}"):
        Softmax(dim=dim)


@pytest.mark.parametrize("dim, shape", [(2, (3, 4)), (-3, (3, 4)), (1, (5,))])
def test_softmax_dim_out_of_range_for_the_input_is_a_clear_error(dim, shape):
    x = Tensor(np.ones(shape, np.float32))
    ndim = len(shape)
    with pytest.raises(ValueError, match=re.escape(f"Softmax(dim={dim}) needs dim in [{-ndim}, {ndim - 1}] for an "
                                                   f"input of shape {shape}")):
        Softmax(dim=dim)(x)
    np.testing.assert_allclose(Softmax(dim=-1)(x).data.sum(axis=-1), 1.0, rtol=1e-6)
