"""Module 04, tasks 04.1-04.3: MSELoss and CrossEntropyLoss against PyTorch (values and
gradients), NumPy formulas and float64 finite differences; stability at |logit| = 1e4;
and errors that name the bad target or shape."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core.activations import Module
from tinytorch.core.losses import CrossEntropyLoss, MSELoss, log_softmax
from tinytorch.core.tensor import Tensor
from gradients import closure_gradcheck

RTOL, ATOL = 1e-5, 1e-6
ONE = np.float32(1.0)  # dL/dloss, what the engine of Module 05 would pass to the loss's closure


def test_losses_are_modules():
    assert isinstance(MSELoss(), Module) and isinstance(CrossEntropyLoss(), Module)


# --- 04.1 MSE ------------------------------------------------------------------------------
@pytest.mark.task("04.1")
@pytest.mark.parametrize("shape", [(6,), (4, 3), (2, 3, 2)])
def test_mse_matches_torch_for_pred_and_target(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    pt, tt = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
    ref = torch.nn.MSELoss()(pt, tt)
    ref.backward()
    loss = MSELoss()(Tensor(p, requires_grad=True), Tensor(t, requires_grad=True))
    grad_pred, grad_target = loss._backward(ONE)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=RTOL)
    np.testing.assert_allclose(grad_pred, pt.grad.numpy(), rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(grad_target, tt.grad.numpy(), rtol=1e-4, atol=ATOL)


@pytest.mark.task("04.1")
@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-100, 100, width=32)))
def test_mse_is_the_mean_square_and_zero_at_the_target(x):
    target = np.zeros_like(x)
    loss = MSELoss()(Tensor(x, requires_grad=True), target)
    np.testing.assert_allclose(loss.item(), np.mean(x.astype(np.float64) ** 2), rtol=1e-5, atol=1e-6)
    (grad,) = loss._backward(ONE)
    np.testing.assert_allclose(grad, 2 * x.astype(np.float64) / x.size, rtol=1e-5, atol=1e-7)
    assert MSELoss()(Tensor(x), x).item() == 0.0


@pytest.mark.task("04.1")
def test_mse_gradcheck():
    rng = np.random.default_rng(1)
    closure_gradcheck(MSELoss(), rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


def test_mse_rejects_shape_mismatch_instead_of_broadcasting():
    with pytest.raises(ValueError, match=r"pred has shape \(4,\) but target has shape \(4, 1\)"):
        MSELoss()(Tensor(np.zeros(4)), np.zeros((4, 1)))
    with pytest.raises(TypeError, match="pred as a Tensor, got ndarray"):
        MSELoss()(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"MSELoss needs at least one element, got pred of shape \(0, 3\)"):
        MSELoss()(Tensor(np.zeros((0, 3))), np.zeros((0, 3)))  # a mean of nothing would be NaN


# --- 04.2 log_softmax ---------------------------------------------------------------------
@pytest.mark.task("04.2")
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=st.floats(-1e4, 1e4)),
       st.floats(-1e3, 1e3))
def test_log_softmax_normalises_and_is_shift_invariant(x, shift):
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = log_softmax(x, axis=1)
    assert (out <= 1e-12).all()
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(log_softmax(x + shift, axis=1), out, atol=1e-9 * (1 + np.abs(x).max() + abs(shift)))


@pytest.mark.task("04.2")
def test_log_softmax_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((3, 4, 5)) * 10
    for axis in (0, 1, -1):
        np.testing.assert_allclose(log_softmax(x, axis=axis), torch.log_softmax(torch.tensor(x), dim=axis).numpy(),
                                   rtol=1e-12, atol=1e-12)


# --- 04.3 cross-entropy --------------------------------------------------------------------
def torch_cross_entropy(torch, z: np.ndarray, y: np.ndarray):
    zt = torch.tensor(z, requires_grad=True)
    loss = torch.nn.CrossEntropyLoss()(zt, torch.tensor(y, dtype=torch.long))
    loss.backward()
    return loss.item(), zt.grad.numpy()


@pytest.mark.task("04.3")
@pytest.mark.parametrize("n, classes, scale", [(1, 2, 1.0), (16, 10, 3.0), (64, 10, 30.0), (5, 3, 1e4)])
def test_cross_entropy_matches_torch(n, classes, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(n)
    z = (scale * rng.standard_normal((n, classes))).astype(np.float32)
    y = rng.integers(0, classes, n)
    expected, expected_grad = torch_cross_entropy(torch, z, y)
    loss = CrossEntropyLoss()(Tensor(z, requires_grad=True), y)
    (grad,) = loss._backward(ONE)
    np.testing.assert_allclose(loss.item(), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=ATOL)


@pytest.mark.task("04.3")
def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    loss = CrossEntropyLoss()(Tensor(z, requires_grad=True), y)
    (grad,) = loss._backward(ONE)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.item(), -np.mean(np.log(p[np.arange(6), y])), rtol=RTOL)
    np.testing.assert_allclose(grad, (p - np.eye(4)[y]) / 6, rtol=1e-4, atol=1e-7)


@pytest.mark.task("04.3")
def test_cross_entropy_gradcheck():
    z = np.random.default_rng(4).standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    closure_gradcheck(lambda t: CrossEntropyLoss()(t, y), z)


@pytest.mark.task("04.3")
def test_cross_entropy_extreme_logits_are_stable():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss = CrossEntropyLoss()(Tensor(z, requires_grad=True), np.array([1, 1]))
        (grad,) = loss._backward(ONE)
    assert loss.item() == pytest.approx(1e4)  # first sample: -log softmax = 2e4; second: 0
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-7)


@pytest.mark.task("04.3")
@pytest.mark.parametrize("wrap", [np.asarray, list, lambda y: Tensor(y), lambda y: np.asarray(y, dtype=np.int32),
                                  lambda y: np.asarray(y, dtype=np.float64)])
def test_cross_entropy_accepts_targets_as_arrays_lists_and_tensors(wrap):
    z = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    y = [2, 0, 1, 2]
    reference = CrossEntropyLoss()(Tensor(z), np.array(y, dtype=np.int64)).item()
    assert CrossEntropyLoss()(Tensor(z), wrap(y)).item() == reference


@pytest.mark.task("04.3")
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(2, 6)), elements=st.floats(-50, 50, width=32)),
       st.data())
def test_cross_entropy_properties(z, data):
    n, classes = z.shape
    y = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    loss = CrossEntropyLoss()(Tensor(z, requires_grad=True), y)
    (grad,) = loss._backward(ONE)
    assert loss.item() >= 0
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)  # softmax and one-hot both sum to 1
    assert (grad[np.arange(n), y] <= 0).all()  # raising the true logit lowers the loss


@pytest.mark.parametrize("target, error, named", [
    (np.array([0, 3]), ValueError, r"target class 3 is out of range for 3 classes \(allowed 0 to 2\)"),
    (np.array([-1, 0]), ValueError, "target class -1 is out of range"),
    (np.array([0, 1, 2]), ValueError, r"target must have shape \(2,\) to match logits \(2, 3\), got \(3,\)"),
    (np.array([[0], [1]]), ValueError, r"got \(2, 1\)"),
    (np.array([0.0, 1.5]), ValueError, "integer class indices, got 1.5"),
    (np.array(["a", "b"]), TypeError, "integer class indices, got dtype <U1"),
])
def test_cross_entropy_rejects_bad_targets(target, error, named):
    with pytest.raises(error, match=named):
        CrossEntropyLoss()(Tensor(np.zeros((2, 3))), target)


def test_cross_entropy_rejects_bad_logits():
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\), got \(3,\)"):
        CrossEntropyLoss()(Tensor(np.zeros(3)), np.array([0]))
    with pytest.raises(ValueError, match="at least one sample"):
        CrossEntropyLoss()(Tensor(np.zeros((0, 3))), np.zeros(0, dtype=np.int64))
    with pytest.raises(TypeError, match="logits as a Tensor, got ndarray"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 1]))
