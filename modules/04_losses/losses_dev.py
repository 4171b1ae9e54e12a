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
# # Module 04: Losses
#
# > MSELoss for regression and CrossEntropyLoss for classification, with a numerically stable log-softmax.
#
# Training needs one number that says how wrong the model is, and whose gradient
# says which way to move every weight. That number is the loss. This module writes
# the two that cover most of the course: the mean squared error for regression, and
# the cross-entropy for classification (the digits of Module 07 and the pruning
# experiments of Module 16 are all trained with it).
#
# Both are `Module`s (as in PyTorch: `loss_fn = CrossEntropyLoss(); loss_fn(logits,
# labels)`) and both are single differentiable ops with a hand-written backward.

# %%
#| default_exp core.losses

# %%
#| export
from __future__ import annotations

from typing import Any

import numpy as np

from tinytorch.core.activations import Module
from tinytorch.core.tensor import Tensor

# %% [markdown]
# ## 1. Mean squared error
#
# `MSE = mean((pred - target)^2)` over every element. With `n` elements and
# `d = pred - target`, its gradient is `2 d / n` for `pred` (and `-2 d / n` for
# `target`, when the target is itself a Tensor that requires grad). The shapes must
# match exactly: silently broadcasting `(N,)` against `(N, 1)` would compare every
# prediction with every target, a classic bug, so a mismatch raises `ValueError`.

# %% nbgrader={"grade": false, "grade_id": "mse", "solution": true}
#| export
class MSELoss(Module):
    """mean((pred - target)^2) over all elements."""

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        """The mean squared error between `pred` and `target` (Tensor or array of the same shape).

        Task 04.1: one op; gradient 2 (pred - target) / n.

        Raises:
            TypeError: `pred` is not a Tensor.
            ValueError: the shapes differ, or they hold no elements (a mean of nothing).
        """
        if not isinstance(pred, Tensor):
            raise TypeError(f"MSELoss expects pred as a Tensor, got {type(pred).__name__}")
        target_data = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=pred.data.dtype)
        if target_data.shape != pred.shape:
            raise ValueError(f"MSELoss: pred has shape {pred.shape} but target has shape {target_data.shape}; "
                             f"they must match")
        if pred.data.size == 0:
            raise ValueError(f"MSELoss needs at least one element, got pred of shape {pred.shape}")
        ### BEGIN SOLUTION
        diff = pred.data - target_data
        parents = (pred, target) if isinstance(target, Tensor) else (pred,)

        def backward(grad: np.ndarray) -> tuple[np.ndarray, ...]:
            g = diff * (2.0 * grad / diff.size)
            return (g, -g) if len(parents) == 2 else (g,)

        return Tensor.from_op(np.asarray(np.mean(diff * diff)), parents, backward, op="mse_loss")
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-mse", "locked": true, "points": 2}
def test_unit_mse():
    """Task 04.1"""
    p = np.array([[1.0, 2.0], [3.0, 5.0]], dtype=np.float32)
    t = np.array([[1.0, 0.0], [3.0, 2.0]], dtype=np.float32)
    pred = Tensor(p, requires_grad=True)
    loss = MSELoss()(pred, t)
    assert loss.shape == () and abs(loss.item() - (4 + 9) / 4) < 1e-6
    (grad,) = loss._backward(np.float32(1.0))  # the op's closure; Module 05 chains them
    np.testing.assert_allclose(grad, 2 * (p - t) / 4)
    try:
        MSELoss()(pred, t.reshape(4, 1))
    except ValueError as err:
        assert "(2, 2)" in str(err) and "(4, 1)" in str(err), err
    else:
        raise AssertionError("a shape mismatch must raise ValueError")
    print("ok: MSELoss")

# %% [markdown]
# ## 2. Cross-entropy, from a stable log-softmax
#
# A classifier outputs one score (logit) per class, `z` of shape `(N, C)`. The
# cross-entropy of sample `i` with true class `y_i` is `-log softmax(z_i)[y_i]`,
# averaged over the batch.
#
# Computing `softmax` and then `log` fails twice: `exp(1000)` overflows, and a tiny
# probability rounds to 0, whose log is `-inf`. The log-softmax can be written
# without either problem. With `m = max_j z_j`:
#
# `log softmax(z)_k = (z_k - m) - log(sum_j exp(z_j - m))`
#
# Every exponent is `<= 0`, and the sum is at least 1 (the term `j = argmax` is
# `exp(0)`), so its log is finite. This is the log-sum-exp trick.
#
# The gradient is the nicest formula of the course. For one sample,
# `dL/dz = softmax(z) - onehot(y)`, and the batch mean divides by `N`:
#
# `dL/dz = (softmax(z) - onehot(y)) / N`
#
# `softmax(z)` is just `exp(log_softmax(z))`, already computed by the forward.

# %% nbgrader={"grade": false, "grade_id": "log-softmax", "solution": true}
#| export
def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) along `axis`, computed with the log-sum-exp trick (no overflow, no log(0)).

    Task 04.2: subtract the maximum, then the log of the summed exponentials.
    """
    ### BEGIN SOLUTION
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-log-softmax", "locked": true, "points": 1}
def test_unit_log_softmax():
    """Task 04.2"""
    x = np.array([[1.0, 2.0, 3.0], [1e4, 0.0, -1e4]], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = log_softmax(x)
    row = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[0], row - np.log(np.exp(row).sum()), rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, -1e4, -2e4])
    print("ok: log_softmax")

# %% [markdown]
# The targets are class indices, given as an integer array or a Tensor (whose data is
# float, so its values must be whole numbers). `_class_indices` checks them before
# any arithmetic: a wrong shape or a class outside `[0, C)` would otherwise index the
# wrong element or crash deep inside NumPy with a message that names neither.

# %% nbgrader={"grade": false, "grade_id": "cross-entropy", "solution": true}
#| export
def _class_indices(target: Any, logits_shape: tuple[int, ...]) -> np.ndarray:
    """`target` as int64 class indices, checked against logits of shape (N, C)."""
    if len(logits_shape) != 2:
        raise ValueError(f"CrossEntropyLoss expects logits of shape (N, C), got {logits_shape}")
    n, classes = logits_shape
    if n == 0:
        raise ValueError(f"CrossEntropyLoss needs at least one sample, got logits of shape {logits_shape}")
    values = target.data if isinstance(target, Tensor) else np.asarray(target)
    if values.shape != (n,):
        raise ValueError(f"CrossEntropyLoss: target must have shape ({n},) to match logits {logits_shape}, "
                         f"got {values.shape}")
    if values.dtype.kind not in "biuf":
        raise TypeError(f"CrossEntropyLoss: target must hold integer class indices, got dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        bad = values[values != np.round(values)][0]
        raise ValueError(f"CrossEntropyLoss: target must hold integer class indices, got {bad}")
    labels = values.astype(np.int64)
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        raise ValueError(f"CrossEntropyLoss: target class {labels[outside][0]} is out of range "
                         f"for {classes} classes (allowed 0 to {classes - 1})")
    return labels


class CrossEntropyLoss(Module):
    """Mean over the batch of -log softmax(logits)[target], for integer class targets."""

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        """The mean cross-entropy of logits (N, C) against class indices (N,).

        Task 04.3: loss from `log_softmax`; gradient (softmax - onehot) / N.

        Raises:
            TypeError: `logits` is not a Tensor, or `target` does not hold numbers.
            ValueError: wrong shapes, non-integer targets or a class outside [0, C).
        """
        if not isinstance(logits, Tensor):
            raise TypeError(f"CrossEntropyLoss expects logits as a Tensor, got {type(logits).__name__}")
        labels = _class_indices(target, logits.shape)
        ### BEGIN SOLUTION
        rows = np.arange(len(labels))
        logp = log_softmax(logits.data, axis=1)

        def backward(grad: np.ndarray) -> tuple[np.ndarray]:
            probs = np.exp(logp)
            probs[rows, labels] -= 1.0
            return (probs * (grad / len(labels)),)

        return Tensor.from_op(np.asarray(-logp[rows, labels].mean()), (logits,), backward, op="cross_entropy")
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-cross-entropy", "locked": true, "points": 3}
def test_unit_cross_entropy():
    """Task 04.3"""
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32)
    y = np.array([0, 2])
    logits = Tensor(z, requires_grad=True)
    loss = CrossEntropyLoss()(logits, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert abs(loss.item() - (-np.log(p[0, 0]) - np.log(p[1, 2])) / 2) < 1e-6
    (grad,) = loss._backward(np.float32(1.0))
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(grad, (p - onehot) / 2, rtol=1e-5, atol=1e-7)
    huge = Tensor(np.array([[1e4, -1e4]], dtype=np.float32))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert CrossEntropyLoss()(huge, [1]).item() == 2e4
    for bad, named in (([0, 3], "class 3"), ([0], "(1,)")):
        try:
            CrossEntropyLoss()(logits, np.array(bad))
        except ValueError as err:
            assert named in str(err), err
        else:
            raise AssertionError(f"target {bad} must raise ValueError")
    print("ok: CrossEntropyLoss")

# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_mse()
    test_unit_log_softmax()
    test_unit_cross_entropy()

# %%
if __name__ == "__main__":
    test_module()
    print("Module 04: all inline tests passed")
