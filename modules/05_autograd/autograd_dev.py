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
# # Module 05: Autograd
#
# > Reverse-mode automatic differentiation: the chain rule run backwards over the graph of Tensor operations.
#
# Module 01 gave every operation its *local* derivative: a small `backward` closure that
# turns the gradient of the loss with respect to the op's output into gradients with
# respect to its inputs. This module connects those closures into a working engine.
#
# You will build four things:
#
# 1. `topological_order(root)`: every tensor the loss depends on, inputs before outputs.
# 2. `backward(root, grad)`: the engine. Walk that order in reverse, call each closure,
#    add the results into the parents' gradients.
# 3. `unbroadcast(grad, shape)`: the reverse of NumPy broadcasting, used by every
#    binary op's closure.
# 4. `gradcheck(fn, inputs)`: the referee. It compares the engine against finite
#    differences, so every op you ever write can be tested in one line.
#
# Grad mode (`no_grad()`, `is_grad_enabled()`) is given to you: forward ops consult it,
# so it must work before you start.

# %%
#| default_exp core.autograd

# %%
#| export
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

# %% [markdown]
# ## The chain rule over a graph
#
# Take `a = 2`, `b = 3` and compute `c = a * b` (6), then `L = c + a` (8). Two ops, two
# closures:
#
# * `add` (c + a -> L): passes its incoming gradient to both inputs unchanged.
# * `mul` (a * b -> c): sends `g * b` to `a` and `g * a` to `b`.
#
# Backwards from `dL/dL = 1`:
#
# | step | closure | contributions |
# |---|---|---|
# | 1 | `add` gets 1 | `dL/dc += 1`, `dL/da += 1` |
# | 2 | `mul` gets `dL/dc = 1` | `dL/da += 1 * b = 3`, `dL/db += 1 * a = 2` |
#
# So `dL/da = 1 + 3 = 4` (indeed `L = ab + a`, `dL/da = b + 1`) and `dL/db = 2`.
# Two lessons hide in this table. First, `a` feeds two ops, and its gradient is the
# **sum** of what both send back: gradients accumulate. Second, `mul` could run only once
# `dL/dc` was final, that is, after every op that consumed `c`: the order matters.
# The engine below is exactly this table, produced automatically for any graph.

# %% [markdown]
# ## Grad mode
#
# Recording a graph costs memory (every op keeps its inputs alive) and time. During
# evaluation nobody calls `backward`, so the graph is waste. `with no_grad():` switches
# recording off: ops still compute their values, but the results do not require grad
# and keep no parents. `Tensor.from_op` asks `is_grad_enabled()` before it stores
# anything.

# %%
#| export
_GRAD_ENABLED = True


def is_grad_enabled() -> bool:
    """Whether new operations record the graph that `backward` needs."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Turn graph recording on or off inside a `with` block; restores the old mode after."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = bool(mode)
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def no_grad() -> contextlib.AbstractContextManager:
    """Context manager (and decorator) that disables graph recording: `with no_grad(): ...`."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager:
    """Context manager that turns graph recording back on, even inside `no_grad()`."""
    return set_grad_enabled(True)


# %% [markdown]
# ## The graph and its order
#
# Every tensor produced by an op remembers `_parents` (the tensors it was computed
# from) and `_backward` (the op's local derivative). Leaves (tensors you created, such
# as weights) have no parents. Following `_parents` from the loss reaches every tensor
# the loss depends on: a directed acyclic graph.
#
# The chain rule says the gradient of the loss `L` with respect to a tensor `v` is the
# sum over every *consumer* `c` of `v` of `dL/dc * dc/dv`. So `v`'s gradient is complete
# only after **all** its consumers have passed their share back. A *topological order*
# (each tensor after everything it was computed from) guarantees exactly that when walked
# in reverse: every consumer comes before the tensors it consumed.
#
# We compute the order with a depth-first search that emits a node after all its
# parents (post-order). A recursive version is three lines, but a 2,000-layer graph (a
# long training loop unrolled, a deep residual chain) overflows Python's recursion limit
# of about 1,000, so we keep our own stack.

# %% nbgrader={"grade": false, "grade_id": "topological-order", "solution": true}
#| export
def topological_order(root: Any) -> list:
    """Every tensor `root` depends on (through `_parents`), each after all of its parents.

    Task 05.1: iterative depth-first search; the last element is `root` itself. Each
    tensor appears once, however many paths lead to it.
    """
    ### BEGIN SOLUTION
    order: list = []
    visited: set[int] = set()
    # Each stack entry is (node, parents_done). A node is emitted the second time it
    # is popped, after everything pushed above it (its parents) has been emitted.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-topological-order", "locked": true, "points": 2}
class _Node:
    """A bare graph node for testing the order without Tensor."""

    def __init__(self, name: str, *parents: "_Node") -> None:
        self.name, self._parents = name, parents


def test_unit_topological_order():
    """Task 05.1"""
    a = _Node("a")
    b = _Node("b", a)
    c = _Node("c", a, b)
    d = _Node("d", c, b)
    order = topological_order(d)
    names = [n.name for n in order]
    assert sorted(names) == ["a", "b", "c", "d"], f"each node once, got {names}"
    pos = {n: i for i, n in enumerate(names)}
    for child, parents in (("b", "a"), ("c", "ab"), ("d", "cb")):
        for p in parents:
            assert pos[p] < pos[child], f"{p} must come before {child}: {names}"
    assert names[-1] == "d"
    # A chain far deeper than the recursion limit.
    node = _Node("0")
    for i in range(5000):
        node = _Node(str(i + 1), node)
    assert len(topological_order(node)) == 5001


# %% [markdown]
# ## The engine
#
# `backward(root, grad)` seeds `dL/droot` (ones for a scalar loss), then visits the
# tensors in reverse topological order. For each one that has received a gradient:
#
# * if it requires grad, add the gradient into its `.grad` (`+=`: calling `backward`
#   twice accumulates, exactly like PyTorch, which is why optimizers call `zero_grad`);
# * if it was produced by an op, call the op's closure to get one gradient per parent,
#   and add each into that parent's running total.
#
# The running totals live in a dictionary keyed by tensor identity, so a tensor used
# twice (`x * x`, or a weight shared by two layers) collects both contributions before
# its own closure runs.
#
# `# NOTE:` a closure may return the very array it was given (addition passes the
# gradient straight through), so two tensors can receive the *same* array object. The
# engine therefore copies an array the first time it stores it in `.grad`; otherwise an
# in-place update of one tensor's gradient (gradient clipping does that) would silently
# change the other's.

# %% nbgrader={"grade": false, "grade_id": "engine", "solution": true}
#| export
def backward(root: Any, grad: Any = None) -> None:
    """Accumulate d(root)/d(t) into `t.grad` for every tensor `t` in root's graph that requires grad.

    Task 05.2: reverse-mode traversal over `topological_order(root)`.

    Args:
        root: the tensor to differentiate (usually a scalar loss); must require grad.
        grad: d(loss)/d(root), shaped like root; `None` means 1 and then root must
            have exactly one element.

    Raises:
        RuntimeError: root does not require grad, or a backward closure returned a
            gradient of the wrong shape.
        ValueError: no `grad` given for a non-scalar root, or `grad` has the wrong shape.
    """
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad (no input had requires_grad=True, "
            "or it was computed under no_grad())")
    dtype = root.data.dtype
    if grad is None:
        if root.data.size != 1:
            raise ValueError(
                f"backward: grad can be omitted only for a one-element tensor, got shape "
                f"{root.data.shape}; pass grad= shaped like the tensor")
        seed = np.ones(root.data.shape, dtype=dtype)
    else:
        seed = np.asarray(getattr(grad, "data", grad), dtype=dtype)
        if seed.shape != root.data.shape:
            raise ValueError(f"backward: grad has shape {seed.shape}, the tensor has shape {root.data.shape}")
    ### BEGIN SOLUTION
    pending: dict[int, np.ndarray] = {id(root): seed}
    for node in reversed(topological_order(root)):
        g = pending.pop(id(node), None)
        if g is None:  # nothing downstream of `root` used this tensor
            continue
        if node.requires_grad:
            if node.grad is None:
                node.grad = np.array(g, dtype=node.data.dtype)  # copy: g may be shared
            else:
                node.grad += g
        if node._backward is None:
            continue
        parent_grads = node._backward(g)
        if not isinstance(parent_grads, (tuple, list)):
            parent_grads = (parent_grads,)
        for parent, pg in zip(node._parents, parent_grads):
            if pg is None or not parent.requires_grad:
                continue
            if type(pg) is not np.ndarray or pg.dtype != parent.data.dtype:
                pg = np.asarray(pg, dtype=parent.data.dtype)
            if pg.shape != parent.data.shape:
                raise RuntimeError(
                    f"backward of op '{node._op}' returned a gradient of shape {pg.shape} "
                    f"for an input of shape {parent.data.shape}")
            key = id(parent)
            pending[key] = pg if key not in pending else pending[key] + pg
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-engine", "locked": true, "points": 3}
class _Leaf:
    """A minimal tensor-like leaf for testing the engine without Tensor."""

    def __init__(self, value, requires_grad=True, parents=(), backward=None, op=""):
        self.data = np.asarray(value, dtype=np.float64)
        self.grad = None
        self.requires_grad = requires_grad
        self._parents, self._backward, self._op = parents, backward, op


def _mul(a, b):
    return _Leaf(a.data * b.data, True, (a, b), lambda g: (g * b.data, g * a.data), "mul")


def test_unit_engine():
    """Task 05.2"""
    x = _Leaf(3.0)
    y = _Leaf(4.0)
    z = _mul(_mul(x, y), x)  # z = x^2 y: dz/dx = 2xy = 24, dz/dy = x^2 = 9
    backward(z)
    assert np.isclose(x.grad, 24.0), f"x used twice: expected 24, got {x.grad}"
    assert np.isclose(y.grad, 9.0), f"expected 9, got {y.grad}"
    backward(z)  # a second call accumulates
    assert np.isclose(x.grad, 48.0), f"gradients accumulate: expected 48, got {x.grad}"
    c = _Leaf(2.0, requires_grad=False)
    w = _mul(c, _Leaf(5.0))
    backward(w)
    assert c.grad is None, "a tensor that does not require grad gets no .grad"


# %% [markdown]
# ## Broadcasting, backwards
#
# NumPy lets `x` of shape `(32, 10)` and `b` of shape `(10,)` be added: `b` is
# *broadcast*, as if copied into each of 32 rows. Each copy of `b[j]` influenced one
# output, so `dL/db[j]` is the **sum** of the 32 gradients in column `j`. In general the
# gradient of a broadcast operand is the output gradient summed over every axis the
# operand was stretched along: the leading axes it did not have, and the axes where it
# had size 1 (kept, with `keepdims=True`, so the result has the operand's shape).

# %% nbgrader={"grade": false, "grade_id": "unbroadcast", "solution": true}
#| export
def unbroadcast(grad: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, so it gets `shape`.

    Task 05.3: sum away the extra leading axes, then (keepdims) the axes where `shape`
    has size 1 and `grad` does not.

    Raises:
        ValueError: `shape` could not have been broadcast to `grad.shape`.
    """
    shape = tuple(shape)
    if grad.shape == shape:  # the common case costs one comparison
        return grad
    ### BEGIN SOLUTION
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} has fewer axes than {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    ### END SOLUTION
    if grad.shape != shape:
        raise ValueError(f"unbroadcast: shape {shape} does not broadcast to the gradient's shape")
    return grad


# %% nbgrader={"grade": true, "grade_id": "test-unbroadcast", "locked": true, "points": 2}
def test_unit_unbroadcast():
    """Task 05.3"""
    g = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    np.testing.assert_allclose(unbroadcast(g, (4,)), g.sum(axis=(0, 1)))
    np.testing.assert_allclose(unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_allclose(unbroadcast(g, (2, 1, 4)), g.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (2, 3, 4)) is g
    try:
        unbroadcast(g, (5,))
    except ValueError:
        pass
    else:
        raise AssertionError("unbroadcast to an impossible shape must raise ValueError")


# %% [markdown]
# ## Gradient checking
#
# How do we know a closure is right? The derivative is a limit we can approximate:
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon}$$
#
# This *central* difference has error $O(\varepsilon^2)$ (the one-sided version has
# $O(\varepsilon)$). With `eps=1e-6` the truncation error is around `1e-12`, but the
# rounding error of the subtraction is about `machine_eps / eps`: `1e-10` in float64,
# yet `0.1` in float32 (machine epsilon `1.2e-7`). `# NOTE:` so gradient checking must
# run in float64; `gradcheck` switches the default dtype of new tensors to float64 while
# it runs.
#
# `numerical_grad` below (given) applies that formula to every element of every input.
# It nudges each element in place, one at a time, evaluates the function twice, and puts
# the element back. It also serves Module 01's tests of the local derivatives.
#
# For an output with many elements, we check one random projection instead of the whole
# Jacobian: `s = sum(w * fn(x))` with fixed random `w`. Its gradient involves every
# column of the Jacobian, so a wrong entry almost surely shows up, and we need only one
# `backward` and two `fn` calls per input element.

# %%
#| export
def numerical_grad(fn: Callable[..., Any], inputs: Sequence[Any], grad_out: np.ndarray,
                   eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of `sum(grad_out * fn(*inputs).data)` with respect to each input's data.

    Args:
        fn: maps the inputs (Tensors) to a Tensor shaped like `grad_out`.
        inputs: Tensors whose `.data` is nudged in place by +-eps and restored; use
            float64 data (see the note above).
        grad_out: the weights of the projection (dL/d(output)).
        eps: the finite-difference step.

    Returns:
        One float64 array per input, shaped like its data.
    """
    grads = []
    with no_grad():  # finite differences never need a graph
        for x in inputs:
            grad = np.zeros(x.data.shape, dtype=np.float64)
            for index in np.ndindex(*x.data.shape):
                keep = x.data[index]
                x.data[index] = keep + eps
                plus = np.sum(grad_out * fn(*inputs).data)
                x.data[index] = keep - eps
                minus = np.sum(grad_out * fn(*inputs).data)
                x.data[index] = keep
                grad[index] = (plus - minus) / (2 * eps)
            grads.append(grad)
    return grads


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences (raised by `gradcheck`)."""


# %% nbgrader={"grade": false, "grade_id": "gradcheck", "solution": true}
#| export
def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the engine's gradients of `fn` at `inputs` against float64 central differences.

    Task 05.4: run `backward` with a random projection `w` of the output, compare each
    input's `.grad` with `numerical_grad`, and report the first element that differs.

    Args:
        fn: maps the input Tensors to a Tensor (any shape).
        inputs: Tensors or arrays; each is copied to a float64 Tensor that requires grad.
        eps: finite-difference step.
        atol, rtol: an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
        seed: seeds the random projection `w`.

    Returns:
        True when every element of every input passes.

    Raises:
        GradcheckError: naming the input index, the element index, the expected
            (numeric) and the received (analytic) value.
    """
    from tinytorch.core.tensor import Tensor, set_default_dtype

    if eps <= 0:
        raise ValueError(f"gradcheck: eps must be > 0, got {eps}")
    previous = set_default_dtype(np.float64)
    try:
        xs = [Tensor(np.array(getattr(x, "data", x), dtype=np.float64), requires_grad=True) for x in inputs]
        ### BEGIN SOLUTION
        out = fn(*xs)
        w = np.random.default_rng(seed).standard_normal(out.data.shape)
        backward(out, w)
        numeric = numerical_grad(fn, xs, w, eps)
        for i, (x, expected) in enumerate(zip(xs, numeric)):
            received = np.zeros_like(x.data) if x.grad is None else x.grad
            # Written as "not <=" so that a NaN on either side counts as a failure.
            wrong = np.argwhere(~(np.abs(received - expected) <= atol + rtol * np.abs(expected)))
            if len(wrong):
                index = tuple(int(k) for k in wrong[0])
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.data.shape}), element {index}: "
                    f"expected {expected[index]:.6g} (finite differences), received "
                    f"{received[index]:.6g} (backward); atol={atol}, rtol={rtol}")
        ### END SOLUTION
    finally:
        set_default_dtype(previous)
    return True


# %% nbgrader={"grade": true, "grade_id": "test-gradcheck", "locked": true, "points": 3}
def test_unit_gradcheck():
    """Task 05.4"""
    from tinytorch.core.tensor import Tensor

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    assert gradcheck(lambda x, y: (x * y + x).sum(axis=0), [a, b])

    def wrong(x):  # forward x^2, backward claims 3x
        return Tensor.from_op(x.data ** 2, (x,), lambda g: (g * 3 * x.data,), op="wrong_square")

    try:
        gradcheck(wrong, [a])
    except GradcheckError as err:
        msg = str(err)
        assert "input 0" in msg and "expected" in msg and "received" in msg, msg
    else:
        raise AssertionError("gradcheck accepted a wrong gradient")


# %% [markdown]
# ## Putting it together
#
# With the engine in place, `Tensor.backward()` (Module 01) calls `backward(self)` and a
# whole network can be differentiated. First the worked example from the top of this
# page, now run by the engine:

# %%
if __name__ == "__main__":
    from tinytorch.core.tensor import Tensor

    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    L = a * b + a
    backward(L)
    print(f"L = {L.item()}, dL/da = {a.grad}, dL/db = {b.grad}")  # 8, 4, 2

# %% [markdown]
# And a two-layer network with a ReLU and a squared loss, checked element by element
# against finite differences:

# %% nbgrader={"grade": true, "grade_id": "test-two-layer-network", "locked": true, "points": 2}
def test_unit_two_layer_network():
    """Task 05.2"""
    from tinytorch.core.tensor import Tensor

    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    w1, b1 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    w2 = rng.standard_normal((4, 2))

    def net(x, w1, b1, w2):
        h = (x @ w1 + b1).maximum(0.0)
        return ((h @ w2) ** 2).mean()

    assert gradcheck(net, [x, w1, b1, w2])


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_topological_order()
    test_unit_engine()
    test_unit_unbroadcast()
    test_unit_gradcheck()
    test_unit_two_layer_network()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 05: all inline tests passed")
