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
# # Module 01: Tensor
#
# > The Tensor: a float32 NumPy array that remembers how it was computed, so gradients can flow back through it.
#
# Every number a network touches (inputs, weights, activations, the loss) lives in a
# tensor. NumPy already stores and computes n-dimensional arrays very well, so our
# `Tensor` does not reimplement arithmetic: it wraps an `np.ndarray` and adds one idea.
# Each operation records **where its result came from** (its parent tensors) and **how
# to send a gradient back** to them (a small `backward` closure holding the op's local
# derivative). Module 05 walks those records backwards to compute every gradient of the
# loss; this module writes the records.
#
# Every operation has the same four steps, so reading one teaches them all:
#
# 1. compute the result with NumPy;
# 2. define `backward(grad_out)`: given dL/d(result), return dL/d(each input);
# 3. attach both with `Tensor.from_op(result, parents, backward, op="name")`;
# 4. return the new tensor.
#
# What you build: construction and validation (Task 01.1), arithmetic (01.2, 01.3),
# matrix multiplication (01.4), elementwise functions (01.5, 01.6), reductions (01.7,
# 01.8) and shape operations (01.9, 01.10).

# %%
#| default_exp core.tensor

# %%
#| export
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np

from tinytorch.core.autograd import backward as autograd_backward
from tinytorch.core.autograd import is_grad_enabled, unbroadcast
from tinytorch.core.checks import check_int

# %%
#| export core.shape_ops
"""Reductions (sum, mean, max) and shape operations (reshape, transpose, indexing) of Tensor."""
from typing import Any

import numpy as np

# NOTE: the last sections of this lesson export to shape_ops.py, which builds on the
# Tensor of tensor.py. In the lesson itself the Tensor cell below replaces these names.
from tinytorch.core.tensor import Tensor, as_tensor

# %% [markdown]
# ## Precision and randomness
#
# Deep learning computes in float32: half the memory of float64, twice the SIMD width,
# and its 7 significant digits are plenty for weights that SGD nudges by noise anyway.
# Only gradient checking (Module 05) needs float64, because finite differences subtract
# two nearly equal numbers; `set_default_dtype` lets it switch temporarily.
#
# Every random initialiser and every Dropout mask draws from one generator, so a single
# `manual_seed(0)` makes a whole training run repeatable.

# %%
#| export
_DEFAULT_DTYPE = np.dtype(np.float32)
_RNG = np.random.default_rng(0)


def get_default_dtype() -> np.dtype:
    """The floating-point dtype that new tensors store (float32 unless changed)."""
    return _DEFAULT_DTYPE


def set_default_dtype(dtype: Any) -> np.dtype:
    """Make new tensors store `dtype` (float32 or float64); returns the previous default."""
    global _DEFAULT_DTYPE
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    previous, _DEFAULT_DTYPE = _DEFAULT_DTYPE, dtype
    return previous


def manual_seed(seed: int) -> None:
    """Seed the generator behind every random initialiser and Dropout (see `get_rng`)."""
    seed = check_int("seed", seed, minimum=0)
    # Re-seed in place, so code that kept a reference from get_rng() sees the new seed.
    _RNG.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state


def get_rng() -> np.random.Generator:
    """The shared random generator (seeded with 0 at import; reseed with `manual_seed`)."""
    return _RNG


# %% [markdown]
# ## Turning data into an array
#
# A tensor accepts a number, a nested list, an ndarray or another tensor, and stores a
# float32 ndarray. Two rules keep it fast and honest:
#
# * **no needless copies**: an ndarray that already is float32 is used as it is
#   (`astype(..., copy=False)`); a training step creates thousands of tensors.
# * **fail early and clearly**: `Tensor("abc")` or a ragged list `[[1, 2], [3]]` must not
#   become a strange object array that crashes three modules later. Raise an error that
#   names what was given and what is allowed.

# %% nbgrader={"grade": false, "grade_id": "to-array", "solution": true}
#| export
def _preview(data: Any, limit: int = 60) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_array(data: Any) -> np.ndarray:
    """`data` (number, nested list, ndarray or Tensor) as an ndarray of the default dtype.

    Task 01.1: convert with NumPy, reject non-numbers and ragged lists, and copy
    nothing when `data` already is an array of that dtype.

    Raises:
        TypeError: the values are not numbers (strings, None, objects, complex).
        ValueError: a nested list is ragged (rows of different lengths).
    """
    dtype = _DEFAULT_DTYPE
    ### BEGIN SOLUTION
    array = data.data if isinstance(data, Tensor) else data
    if not isinstance(array, np.ndarray):
        try:
            array = np.asarray(array)
        except ValueError:
            raise ValueError(f"Tensor data must be rectangular (every row the same length), "
                             f"got ragged {_preview(data)}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numbers (bool, int or float), got "
                        f"{type(data).__name__} {_preview(data)} (dtype {array.dtype})")
    return array.astype(dtype, copy=False)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-to-array", "locked": true, "points": 2}
def _close(actual, expected, rtol=1e-5, atol=1e-6):
    """Float32 results against a float64 NumPy reference, at float32 precision."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def test_unit_to_array():
    """Task 01.1"""
    a = np.ones((2, 3), dtype=np.float32)
    assert to_array(a) is a, "a float32 ndarray must not be copied"
    b = to_array([[1, 2], [3, 4]])
    assert b.dtype == np.float32 and b.shape == (2, 2)
    assert to_array(3).shape == ()
    for bad, kind in (("abc", TypeError), (None, TypeError), ([[1, 2], [3]], ValueError)):
        try:
            to_array(bad)
        except kind as err:
            assert str(err), "the message must say what was wrong"
        else:
            raise AssertionError(f"to_array({bad!r}) must raise {kind.__name__}")


# %% [markdown]
# ## The Tensor class
#
# The class itself is small: the data, the gradient slot, the `requires_grad` flag, and
# three private fields that make up one node of the graph (`_parents`, `_backward`,
# `_op`). Operators such as `+` and `@` delegate to plain functions (`add`, `matmul`)
# written in the sections below, one concept per cell.
#
# `from_op` is the door through which every differentiable operation, here and in later
# modules (activations, losses, convolutions), returns its result. It stores the graph
# only when it is needed: grad mode is on **and** some parent requires grad. Evaluation
# under `no_grad()` and arithmetic on constants therefore cost nothing extra.
#
# `__array_ufunc__ = None` tells NumPy to hand `ndarray + Tensor` to `Tensor.__radd__`
# instead of trying to treat the tensor as an array of objects.

# %%
#| export
def as_tensor(value: Any) -> "Tensor":
    """A Tensor as is; a number or array as a constant Tensor (no grad)."""
    return value if isinstance(value, Tensor) else Tensor(value)


class Tensor:
    """An n-dimensional float32 array that records the operations producing it, for autograd."""

    __array_ufunc__ = None  # NumPy defers `ndarray <op> Tensor` to our reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data: np.ndarray = to_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Callable[[np.ndarray], Sequence[np.ndarray | None]] | None = None
        self._op = ""

    @classmethod
    def from_op(cls, data: np.ndarray, parents: Sequence["Tensor"],
                backward: Callable[[np.ndarray], Sequence[np.ndarray | None]], op: str = "") -> "Tensor":
        """The result of a differentiable op: `data` plus, when grad is needed, its graph node.

        Args:
            data: the forward result (ndarray; cast to the default dtype if it is not).
            parents: the input Tensors, in the order `backward` returns their gradients.
            backward: maps dL/d(result) to one gradient per parent (or None), each
                already shaped like that parent (see `autograd.unbroadcast`).
            op: a name for error messages and `repr`.
        """
        out = cls.__new__(cls)
        if type(data) is not np.ndarray or data.dtype != _DEFAULT_DTYPE:
            data = np.asarray(data, dtype=_DEFAULT_DTYPE)
        out.data, out.grad, out._op = data, None, op
        out.requires_grad, out._parents, out._backward = False, (), None
        if is_grad_enabled():
            for p in parents:
                if p.requires_grad:
                    out.requires_grad, out._parents, out._backward = True, tuple(parents), backward
                    break
        return out

    # --- what it holds -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The element type (float32 by default)."""
        return self.data.dtype

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed (the matrix transpose for 2-D)."""
        return transpose(self)

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The single value of a one-element tensor, as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.data.shape}")
        return float(self.data.reshape(-1)[0])

    def detach(self) -> "Tensor":
        """A tensor sharing this data, cut from the graph (no grad)."""
        return Tensor(self.data)

    def backward(self, grad: Any = None) -> None:
        """Accumulate the gradient of this tensor into `.grad` of every tensor it depends on."""
        autograd_backward(self, grad)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # NOTE: `np.array(t)` asks for a copy (copy=True); returning `self.data` would let
        # edits of that "copy" change the tensor. `np.asarray(t)` (copy=None) shares it.
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += f", op={self._op!r}" if self._parents else ""
        return f"Tensor({body}{extra})"

    # --- operators: each delegates to the function that defines it -----------------
    def __add__(self, other: Any) -> "Tensor": return add(self, other)
    def __radd__(self, other: Any) -> "Tensor": return add(other, self)
    def __sub__(self, other: Any) -> "Tensor": return sub(self, other)
    def __rsub__(self, other: Any) -> "Tensor": return sub(other, self)
    def __mul__(self, other: Any) -> "Tensor": return mul(self, other)
    def __rmul__(self, other: Any) -> "Tensor": return mul(other, self)
    def __truediv__(self, other: Any) -> "Tensor": return div(self, other)
    def __rtruediv__(self, other: Any) -> "Tensor": return div(other, self)
    def __matmul__(self, other: Any) -> "Tensor": return matmul(self, other)
    def __rmatmul__(self, other: Any) -> "Tensor": return matmul(other, self)
    def __pow__(self, exponent: float) -> "Tensor": return pow(self, exponent)
    def __neg__(self) -> "Tensor": return neg(self)
    def __abs__(self) -> "Tensor": return abs(self)
    def __getitem__(self, index: Any) -> "Tensor": return getitem(self, index)

    def exp(self) -> "Tensor":
        """e to the power of each element."""
        return exp(self)

    def log(self) -> "Tensor":
        """Natural logarithm of each element."""
        return log(self)

    def sqrt(self) -> "Tensor":
        """Square root of each element."""
        return sqrt(self)

    def abs(self) -> "Tensor":
        """Absolute value of each element."""
        return abs(self)

    def maximum(self, other: Any) -> "Tensor":
        """Elementwise maximum with `other` (broadcast)."""
        return maximum(self, other)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        """Sum over `axis` (all axes when None)."""
        return sum(self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        """Mean over `axis` (all axes when None)."""
        return mean(self, axis, keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        """Maximum over `axis` (all axes when None); ties share the gradient equally."""
        return max(self, axis, keepdims)

    def reshape(self, *shape: Any) -> "Tensor":
        """The same data with a new shape: `t.reshape(2, 3)` or `t.reshape((2, 3))`."""
        return reshape(self, *shape)

    def transpose(self, *axes: Any) -> "Tensor":
        """Permute the axes (reverse them when none are given)."""
        return transpose(self, *axes)


# %%
#| export
# Reductions and shape operations live in shape_ops.py (from the sections "Sum and mean"
# on), which needs the class above: imported after it, so `t.sum()` finds them and
# `from tinytorch.core.tensor import sum` keeps working.
from tinytorch.core.shape_ops import getitem, max, mean, reshape, sum, transpose

_all_ = ["sum", "mean", "max", "reshape", "transpose", "getitem"]


# %% [markdown]
# ## Addition and multiplication: the pattern
#
# For `c = a + b`, dL/da = dL/dc (the local derivative is 1); for `c = a * b`,
# dL/da = dL/dc * b and dL/db = dL/dc * a.
#
# Broadcasting adds one twist. If `a` has shape `(32, 10)` and `b` shape `(10,)`, then
# `grad_out * a` has shape `(32, 10)`, but `b` needs a gradient of shape `(10,)`:
# `unbroadcast(grad, b.shape)` sums the 32 rows (Module 05 explains why and lets you
# write it; until then only same-shape gradients work).
#
# A closure computes the gradient of a parent only when that parent requires grad.
# The input batch of a network never does, so the gradient with respect to the batch
# (an array as large as the batch itself) is never computed.

# %% nbgrader={"grade": false, "grade_id": "add-mul", "solution": true}
#| export
def add(a: Any, b: Any) -> Tensor:
    """Elementwise a + b with broadcasting.

    Task 01.2: forward with NumPy; backward passes g to both parents (unbroadcast).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    def backward(g: np.ndarray):
        return (unbroadcast(g, a.data.shape) if a.requires_grad else None,
                unbroadcast(g, b.data.shape) if b.requires_grad else None)
    return Tensor.from_op(a.data + b.data, (a, b), backward, op="add")
    ### END SOLUTION


def mul(a: Any, b: Any) -> Tensor:
    """Elementwise a * b with broadcasting.

    Task 01.2: forward with NumPy; backward gives g * b to a and g * a to b (unbroadcast).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    def backward(g: np.ndarray):
        return (unbroadcast(g * b.data, a.data.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.data.shape) if b.requires_grad else None)
    return Tensor.from_op(a.data * b.data, (a, b), backward, op="mul")
    ### END SOLUTION


# %% [markdown]
# A quick look: the result of an op on a tensor that requires grad records its op.

# %%
if __name__ == "__main__":
    w = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    print(w * 2 + 1)


# %% [markdown]
# The inline tests check the *local* derivative directly: call the recorded closure
# with a random `grad_out` and compare with central finite differences of the forward
# computation, `(f(x + eps) - f(x - eps)) / (2 eps)` element by element, in float64.
# The finite differences come from `numerical_grad` in `tinytorch.core.autograd` (given
# code; Module 05 explains it and builds `gradcheck` on it for whole graphs).

# %% nbgrader={"grade": true, "grade_id": "test-add-mul", "locked": true, "points": 2}
def _local_grad_check(fn: Callable[..., Tensor], *arrays: np.ndarray) -> None:
    """Compare each parent's gradient from `fn`'s closure with finite differences (float64)."""
    from tinytorch.core.autograd import numerical_grad

    previous = set_default_dtype(np.float64)
    try:
        xs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
        out = fn(*xs)
        g = np.random.default_rng(0).standard_normal(out.shape)
        grads = tuple(out._backward(g))
        assert len(grads) == len(xs), f"{out._op}: {len(grads)} gradients for {len(xs)} inputs"
        for i, (grad, numeric) in enumerate(zip(grads, numerical_grad(fn, xs, g))):
            np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6,
                                       err_msg=f"gradient of input {i} of {out._op}")
    finally:
        set_default_dtype(previous)


def test_unit_add_mul():
    """Task 01.2"""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    _close((Tensor(a) + Tensor(b)).data, (a + b))
    _close((Tensor(a) * b).data, (a * b))
    _close((2.0 * Tensor(a)).data, (2 * a))
    assert (Tensor(a) + Tensor(b[0])).shape == (3, 4), "broadcasting forward"
    _local_grad_check(add, a, b)
    _local_grad_check(mul, a, b)
    assert (Tensor(a) * 3.0)._parents == (), "no graph when nothing requires grad"


# %% [markdown]
# ## Subtraction, negation, division, powers
#
# * `-a`: dL/da = -g.  `a - b`: g and -g.
# * `a / b`: dL/da = g / b, dL/db = -g a / b^2 = -g (a / b) / b.
# * `a ** p` for a number `p`: dL/da = g p a^(p-1). (A tensor exponent is not
#   supported; `exp` and `log` cover that need.)

# %% nbgrader={"grade": false, "grade_id": "sub-div-pow", "solution": true}
#| export
def neg(a: Any) -> Tensor:
    """Elementwise -a.

    Task 01.3: forward -a; backward -g.
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    return Tensor.from_op(-a.data, (a,), lambda g: (-g,), op="neg")
    ### END SOLUTION


def sub(a: Any, b: Any) -> Tensor:
    """Elementwise a - b with broadcasting.

    Task 01.3: forward a - b; backward gives g to a and -g to b (unbroadcast).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    def backward(g: np.ndarray):
        return (unbroadcast(g, a.data.shape) if a.requires_grad else None,
                unbroadcast(-g, b.data.shape) if b.requires_grad else None)
    return Tensor.from_op(a.data - b.data, (a, b), backward, op="sub")
    ### END SOLUTION


def div(a: Any, b: Any) -> Tensor:
    """Elementwise a / b with broadcasting.

    Task 01.3: forward a / b; backward gives g / b to a and -g a / b^2 to b (unbroadcast).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    out = a.data / b.data

    def backward(g: np.ndarray):
        return (unbroadcast(g / b.data, a.data.shape) if a.requires_grad else None,
                unbroadcast(-g * out / b.data, b.data.shape) if b.requires_grad else None)
    return Tensor.from_op(out, (a, b), backward, op="div")
    ### END SOLUTION


def pow(a: Any, exponent: float) -> Tensor:
    """Elementwise a ** exponent for a real number `exponent`.

    Task 01.3: forward a ** p; backward g * p * a^(p-1).

    Raises:
        TypeError: `exponent` is not a real number.
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
        raise TypeError(f"the exponent of ** must be a real number, got {type(exponent).__name__} "
                        f"{_preview(exponent)}")
    p = float(exponent)
    return Tensor.from_op(a.data ** p, (a,), lambda g: (g * p * a.data ** (p - 1),), op="pow")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-sub-div-pow", "locked": true, "points": 2}
def test_unit_sub_div_pow():
    """Task 01.3"""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.uniform(0.5, 2.0, (2, 3))
    _close((Tensor(a) - b).data, (a - b))
    _close((1.0 - Tensor(a)).data, (1 - a))
    _close((Tensor(a) / b).data, (a / b))
    _close((Tensor(b) ** 1.5).data, (b ** 1.5))
    _local_grad_check(neg, a)
    _local_grad_check(sub, a, b)
    _local_grad_check(div, a, b)
    _local_grad_check(lambda x: x ** 3, a)
    _local_grad_check(lambda x: x ** -0.5, b)


# %% [markdown]
# ## Matrix multiplication
#
# For `C = A @ B` with `A (n, k)` and `B (k, m)`: dL/dA = G @ B^T and dL/dB = A^T @ G
# (check the shapes: `(n, m) @ (m, k) = (n, k)`). Batched operands `(..., n, k)` use the
# same formulas on their last two axes, and batch axes that were broadcast are summed
# away with `unbroadcast`. A 1-D operand is treated as a row (left) or a column (right)
# matrix and the added axis is removed again.
#
# A shape mismatch is the most common bug in deep-learning code, so the error names both
# shapes.

# %% nbgrader={"grade": false, "grade_id": "matmul", "solution": true}
#| export
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product a @ b (2-D, batched, or with a 1-D operand).

    Task 01.4: check the inner dimensions, multiply, and record dA = G B^T, dB = A^T G.

    Raises:
        ValueError: an operand is 0-d, or the inner dimensions differ (names both shapes).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs operands with at least 1 axis, got shapes {a.shape} and {b.shape}")
    k_left = a.shape[-1]
    k_right = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_left != k_right:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{k_left} (last axis of the left) != {k_right} (the right's rows)")
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None

    def backward(g: np.ndarray):
        # Treat 1-D operands as (1, k) / (k, 1) matrices, so one formula covers all cases.
        a2 = a.data if a.ndim > 1 else a.data[None, :]
        b2 = b.data if b.ndim > 1 else b.data[:, None]
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if b.requires_grad:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return ga, gb
    return Tensor.from_op(out, (a, b), backward, op="matmul")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-matmul", "locked": true, "points": 3}
def test_unit_matmul():
    """Task 01.4"""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    _close((Tensor(a) @ Tensor(b)).data, a @ b, rtol=1e-5, atol=1e-6)
    _local_grad_check(matmul, a, b)
    _local_grad_check(matmul, a, rng.standard_normal(4))
    _local_grad_check(matmul, rng.standard_normal(3), a)
    _local_grad_check(matmul, rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5)))
    try:
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    except ValueError as err:
        assert "(2, 3)" in str(err) and "(4, 5)" in str(err), str(err)
    else:
        raise AssertionError("(2, 3) @ (4, 5) must raise ValueError")


# %% [markdown]
# ## Elementwise functions
#
# | op | forward | local derivative |
# |---|---|---|
# | `exp` | e^x | e^x (reuse the output) |
# | `log` | ln x | 1 / x |
# | `sqrt` | sqrt x | 1 / (2 sqrt x) (reuse the output) |
# | `abs` | abs x | sign x (0 at 0, as PyTorch does) |
#
# `# NOTE:` `log` of 0 is -inf and its gradient inf. Losses add a small epsilon or, better,
# work with log-softmax (Module 04) so that `log` never sees a 0.

# %% nbgrader={"grade": false, "grade_id": "elementwise", "solution": true}
#| export
def exp(a: Any) -> Tensor:
    """Elementwise e ** a.

    Task 01.5: forward np.exp; backward g * e^a (reuse the output).
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    out = np.exp(a.data)
    return Tensor.from_op(out, (a,), lambda g: (g * out,), op="exp")
    ### END SOLUTION


def log(a: Any) -> Tensor:
    """Elementwise natural logarithm.

    Task 01.5: forward np.log; backward g / a.
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    return Tensor.from_op(np.log(a.data), (a,), lambda g: (g / a.data,), op="log")
    ### END SOLUTION


def sqrt(a: Any) -> Tensor:
    """Elementwise square root.

    Task 01.5: forward np.sqrt; backward g / (2 sqrt(a)) (reuse the output).
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    out = np.sqrt(a.data)
    return Tensor.from_op(out, (a,), lambda g: (g * 0.5 / out,), op="sqrt")
    ### END SOLUTION


def abs(a: Any) -> Tensor:
    """Elementwise absolute value.

    Task 01.5: forward np.abs; backward g * sign(a).
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    return Tensor.from_op(np.abs(a.data), (a,), lambda g: (g * np.sign(a.data),), op="abs")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-elementwise", "locked": true, "points": 2}
def test_unit_elementwise():
    """Task 01.5"""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 2.0, (2, 3))
    s = rng.standard_normal((2, 3))
    for fn, ref, arg in ((exp, np.exp, s), (log, np.log, x), (sqrt, np.sqrt, x), (abs, np.abs, s)):
        _close(fn(Tensor(arg)).data, ref(arg))
        _local_grad_check(fn, arg)
    _close(Tensor(s).exp().data, np.exp(s))


# %% [markdown]
# ## Maximum of two tensors
#
# `a.maximum(b)` is the elementwise larger value; `x.maximum(0.0)` is ReLU. The gradient
# goes to whichever input won. At a tie both inputs are equally responsible, so each
# gets half (PyTorch's convention), which also keeps the finite-difference check happy.

# %% nbgrader={"grade": false, "grade_id": "maximum", "solution": true}
#| export
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum of a and b (broadcast); a tie splits the gradient in half.

    Task 01.6: forward np.maximum; the gradient goes to the larger input, half to each at a tie (unbroadcast).
    """
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    def backward(g: np.ndarray):
        share = np.asarray(a.data > b.data, dtype=g.dtype)  # 1 where a wins, 0 where b wins
        share[a.data == b.data] = 0.5
        return (unbroadcast(g * share, a.data.shape) if a.requires_grad else None,
                unbroadcast(g * (1.0 - share), b.data.shape) if b.requires_grad else None)
    return Tensor.from_op(np.maximum(a.data, b.data), (a, b), backward, op="maximum")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-maximum", "locked": true, "points": 1}
def test_unit_maximum():
    """Task 01.6"""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    _close(Tensor(a).maximum(b).data, np.maximum(a, b))
    _close(Tensor(a).maximum(0.0).data, np.maximum(a, 0))
    _local_grad_check(maximum, a, b)
    t = Tensor([1.0, 2.0], requires_grad=True)
    ga, gb = maximum(t, Tensor([1.0, 0.0], requires_grad=True))._backward(np.ones(2, np.float32))
    _close(ga, [0.5, 1.0])
    _close(gb, [0.5, 0.0])


# %% [markdown]
# ## Sum and mean
#
# A sum hands its output's gradient to every element that went into it: the gradient of
# `y = x.sum(axis=1)` with respect to `x[i, j]` is `g[i]`. In code: put the reduced axes
# back as size-1 axes (`np.expand_dims`) and broadcast to the input's shape
# (`np.broadcast_to` builds a read-only view, no copy). A mean divides that by the
# number of elements averaged.

# %% nbgrader={"grade": false, "grade_id": "sum-mean", "solution": true}
#| export core.shape_ops
def _expand(g: np.ndarray, shape: tuple[int, ...], axis: Any, keepdims: bool) -> np.ndarray:
    """Broadcast the gradient of a reduction back to the input's shape (a view)."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


# NOTE: `sum`, `max`, `abs` and `pow` shadow Python's builtins inside this file, as
# `torch.sum` does in torch's namespace. Nothing here needs the builtins; other code
# calls the methods (`x.sum()`) or imports the module (`from tinytorch.core import tensor`).
def sum(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Sum of the elements over `axis` (all when None).

    Task 01.7: forward np.sum; backward broadcasts g back to the input shape (`_expand`).
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    out = np.sum(a.data, axis=axis, keepdims=keepdims)
    return Tensor.from_op(out, (a,), lambda g: (_expand(g, a.data.shape, axis, keepdims),), op="sum")
    ### END SOLUTION


def mean(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Mean of the elements over `axis` (all when None).

    Task 01.7: forward np.mean; backward is the sum's, divided by the number of elements averaged.
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    out = np.mean(a.data, axis=axis, keepdims=keepdims)
    count = a.data.size // (np.size(out) or 1)
    return Tensor.from_op(out, (a,), lambda g: (_expand(g / count, a.data.shape, axis, keepdims),), op="mean")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-sum-mean", "locked": true, "points": 2}
def test_unit_sum_mean():
    """Task 01.7"""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4))
    for axis in (None, 0, -1, (0, 2)):
        for keepdims in (False, True):
            _close(Tensor(x).sum(axis, keepdims).data,
                                       x.sum(axis=axis, keepdims=keepdims), rtol=1e-5, atol=1e-6)
            _close(Tensor(x).mean(axis, keepdims).data,
                                       x.mean(axis=axis, keepdims=keepdims), rtol=1e-5, atol=1e-6)
            _local_grad_check(lambda t: t.sum(axis, keepdims), x)
            _local_grad_check(lambda t: t.mean(axis, keepdims), x)


# %% [markdown]
# ## Max over an axis
#
# Only the largest element influenced the result, so it alone receives the gradient.
# With ties (common after ReLU: several zeros), the gradient is shared equally among the
# tied elements, so the total passed back stays `g`.

# %% nbgrader={"grade": false, "grade_id": "max", "solution": true}
#| export core.shape_ops
def max(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Largest element over `axis` (all when None); tied maxima share the gradient.

    Task 01.8: forward np.max; backward sends g to the maximal elements, split equally among ties.
    """
    a = as_tensor(a)
    ### BEGIN SOLUTION
    top = np.max(a.data, axis=axis, keepdims=True)
    out = top if keepdims else np.squeeze(top, axis=axis)

    def backward(g: np.ndarray):
        winners = a.data == top
        share = winners / winners.sum(axis=axis, keepdims=True)
        return (_expand(g, a.data.shape, axis, keepdims) * share.astype(g.dtype),)
    return Tensor.from_op(out, (a,), backward, op="max")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-max", "locked": true, "points": 2}
def test_unit_max():
    """Task 01.8"""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4))
    for axis in (None, 0, 1):
        for keepdims in (False, True):
            _close(Tensor(x).max(axis, keepdims).data,
                                       x.max(axis=axis, keepdims=keepdims))
            _local_grad_check(lambda t: t.max(axis, keepdims), x)
    tie = Tensor([1.0, 3.0, 3.0], requires_grad=True)
    _close(tie.max()._backward(np.float32(1.0))[0], [0.0, 0.5, 0.5])


# %% [markdown]
# ## Reshape, transpose and indexing
#
# These move numbers around without changing them, so the backward pass moves the
# gradient back: `reshape` reshapes it to the input's shape, `transpose` applies the
# inverse permutation (`np.argsort(axes)`), and indexing scatters it into a zero array
# of the input's shape.
#
# `# NOTE:` with integer-array indexing an element can be picked twice
# (`x[[0, 0, 1]]`); `grad[idx] += g` would then count it once, because NumPy's
# fancy-index assignment does not accumulate. `np.add.at` does.

# %% nbgrader={"grade": false, "grade_id": "reshape-transpose", "solution": true}
#| export core.shape_ops
def _shape_arg(args: tuple) -> tuple:
    """Accept both `f(2, 3)` and `f((2, 3))`."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)


def reshape(a: Any, *shape: Any) -> Tensor:
    """The elements of `a` in a new shape (one axis may be -1).

    Task 01.9: forward ndarray.reshape; backward reshapes g to the input shape.

    Raises:
        ValueError: the element counts differ (names both shapes).
    """
    a = as_tensor(a)
    shape = _shape_arg(shape)
    ### BEGIN SOLUTION
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                         f"into shape {shape}") from None
    return Tensor.from_op(out, (a,), lambda g: (g.reshape(a.data.shape),), op="reshape")
    ### END SOLUTION


def transpose(a: Any, *axes: Any) -> Tensor:
    """`a` with its axes permuted by `axes` (reversed when none are given).

    Task 01.9: forward ndarray.transpose; backward applies the inverse permutation to g.

    Raises:
        ValueError: `axes` is not a permutation of the tensor's axes.
    """
    a = as_tensor(a)
    axes = _shape_arg(axes) or tuple(range(a.ndim - 1, -1, -1))
    ### BEGIN SOLUTION
    if (any(not -a.ndim <= ax < a.ndim for ax in axes)
            or sorted(ax % a.ndim for ax in axes) != list(range(a.ndim))):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    inverse = tuple(np.argsort([ax % a.ndim for ax in axes]))
    return Tensor.from_op(a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),), op="transpose")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-reshape-transpose", "locked": true, "points": 2}
def test_unit_reshape_transpose():
    """Task 01.9"""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    assert Tensor(x).reshape(6, 4).shape == (6, 4)
    assert Tensor(x).reshape((4, -1)).shape == (4, 6)
    _close(Tensor(x).transpose(1, 2, 0).data, x.transpose(1, 2, 0))
    _close(Tensor(x).T.data, x.T)
    _local_grad_check(lambda t: t.reshape(4, 6), x)
    _local_grad_check(lambda t: t.transpose(2, 0, 1), x)
    try:
        Tensor(x).reshape(5, 5)
    except ValueError as err:
        assert "(2, 3, 4)" in str(err), str(err)
    else:
        raise AssertionError("reshape to an impossible shape must raise ValueError")


# %% nbgrader={"grade": false, "grade_id": "getitem", "solution": true}
#| export core.shape_ops
def _plain_index(index: Any) -> tuple[Any, bool]:
    """The index with Tensors turned into integer arrays, and whether it is advanced."""
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(p.data.astype(np.intp) if isinstance(p, Tensor) else p for p in parts)
    advanced = any(isinstance(p, (list, np.ndarray)) for p in parts)
    return (parts if isinstance(index, tuple) else parts[0]), advanced


def getitem(a: Any, index: Any) -> Tensor:
    """`a[index]` for basic (ints, slices, None, ...) and integer-array indexing.

    Task 01.10: forward a.data[index]; backward scatters g into zeros of the input shape (np.add.at for arrays).
    """
    a = as_tensor(a)
    index, advanced = _plain_index(index)
    ### BEGIN SOLUTION
    def backward(g: np.ndarray):
        grad = np.zeros(a.data.shape, dtype=g.dtype)
        if advanced:
            np.add.at(grad, index, g)  # repeated indices accumulate
        else:
            grad[index] = g
        return (grad,)
    return Tensor.from_op(a.data[index], (a,), backward, op="getitem")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-getitem", "locked": true, "points": 2}
def test_unit_getitem():
    """Task 01.10"""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 5))
    _close(Tensor(x)[1:3, ::2].data, x[1:3, ::2])
    _local_grad_check(lambda t: t[1:3, ::2], x)
    _local_grad_check(lambda t: t[1], x)
    rows, cols = np.array([0, 0, 3]), np.array([1, 1, 4])
    _close(Tensor(x)[rows, cols].data, x[rows, cols])
    _local_grad_check(lambda t: t[rows, cols], x)  # (0, 1) picked twice: gradient 2 g


# %% [markdown]
# ## Everything together
#
# A tiny computation with every kind of op, and a look at the graph it recorded. The
# gradients themselves arrive in Module 05, when `backward()` gets its engine.

# %%
if __name__ == "__main__":
    x = Tensor(np.arange(6.0).reshape(2, 3))
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    loss = ((x @ w).maximum(1.0) ** 2).mean()
    print(loss, "<- op", repr(loss._op), "parents", [p._op or "leaf" for p in loss._parents])


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_to_array()
    test_unit_add_mul()
    test_unit_sub_div_pow()
    test_unit_matmul()
    test_unit_elementwise()
    test_unit_maximum()
    test_unit_sum_mean()
    test_unit_max()
    test_unit_reshape_transpose()
    test_unit_getitem()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 01: all inline tests passed")
