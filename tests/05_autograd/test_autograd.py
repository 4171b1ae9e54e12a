"""Module 05: the topological order, the reverse-mode engine, unbroadcast, grad mode and
gradcheck; every op's gradient through the engine against finite differences, broadcasting
backward as a property, and PyTorch as a second reference where it is installed."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core import autograd
from tinytorch.core.autograd import (GradcheckError, enable_grad, gradcheck, is_grad_enabled, no_grad,
                                     topological_order, unbroadcast)
from tinytorch.core.tensor import Tensor, get_default_dtype


class Node:
    """A bare graph node: the order needs nothing but `_parents`."""

    def __init__(self, name, parents=()):
        self.name, self._parents = name, tuple(parents)


# ---------------------------------------------------------------------------------------
# Task 05.1: topological order


@st.composite
def dags(draw):
    """A random DAG: node i may depend on any earlier nodes; returns (nodes, root)."""
    n = draw(st.integers(1, 25))
    nodes = []
    for i in range(n):
        parents = draw(st.lists(st.integers(0, i - 1), max_size=4)) if i else []
        nodes.append(Node(i, [nodes[p] for p in parents]))
    return nodes, nodes[-1]


def ancestors(root):
    seen, todo = set(), [root]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            todo.extend(node._parents)
    return seen


@pytest.mark.task("05.1")
@given(dags())
def test_order_puts_every_parent_first_and_each_node_once(graph):
    _, root = graph
    order = topological_order(root)
    ids = [id(n) for n in order]
    assert len(ids) == len(set(ids)), "each node once"
    assert set(ids) == ancestors(root), "exactly the nodes root depends on"
    assert order[-1] is root
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for parent in node._parents:
            assert position[id(parent)] < position[id(node)], f"{parent.name} after {node.name}"


@pytest.mark.task("05.1")
def test_order_handles_graphs_deeper_than_the_recursion_limit():
    node = Node(0)
    for i in range(1, 20001):
        node = Node(i, [node, node])  # each node used twice: also tests de-duplication
    order = topological_order(node)
    assert [n.name for n in order] == list(range(20001))


# ---------------------------------------------------------------------------------------
# Task 05.2: the engine


@pytest.mark.task("05.2")
def test_tensor_used_twice_accumulates_both_paths():
    x = Tensor([3.0], requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1 = 7
    y.backward()
    np.testing.assert_allclose(x.grad, [7.0])


@pytest.mark.task("05.2")
def test_diamond_graph():
    x = Tensor([2.0], requires_grad=True)
    a, b = x * 3.0, x.exp()
    (a * b).backward()  # d/dx 3x e^x = 3 e^x (1 + x)
    np.testing.assert_allclose(x.grad, 3 * np.exp(2.0) * 3, rtol=1e-6)


@pytest.mark.task("05.2")
def test_backward_twice_accumulates_and_grads_are_float32():
    w = Tensor(np.ones((2, 2)), requires_grad=True)
    loss = (w * 2.0).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_allclose(w.grad, np.full((2, 2), 4.0))
    assert w.grad.dtype == np.float32 and w.grad.shape == w.shape


@pytest.mark.task("05.2")
def test_only_tensors_that_require_grad_get_grad():
    x = Tensor(np.ones(3))
    w = Tensor(np.ones(3), requires_grad=True)
    h = x * w
    h.sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad, np.ones(3))
    # Intermediate results that require grad get .grad too (docs/internals.md).
    np.testing.assert_allclose(h.grad, np.ones(3))


@pytest.mark.task("05.2")
def test_shared_gradient_arrays_are_not_aliased():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()  # add hands the same array to both parents
    a.grad *= 10.0  # in-place, as gradient clipping does
    np.testing.assert_allclose(b.grad, np.ones(3))


@pytest.mark.task("05.2")
def test_explicit_grad_for_non_scalar_output():
    x = Tensor(np.arange(4.0), requires_grad=True)
    y = x * x
    y.backward(np.array([1.0, 0.0, 2.0, 1.0]))
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 8.0, 6.0])
    x.grad = None
    y.backward(Tensor(np.ones(4)))
    np.testing.assert_allclose(x.grad, 2 * np.arange(4.0))


@pytest.mark.task("05.2")
def test_engine_errors_are_clear():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"one-element.*\(2, 3\)"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()
    bad = Tensor.from_op(x.data.sum(axis=0), (x,), lambda g: (g,), op="broken_sum")
    with pytest.raises(RuntimeError, match=r"broken_sum.*\(3,\).*\(2, 3\)"):
        bad.sum().backward()


@pytest.mark.task("05.2")
def test_deep_graph_does_not_hit_recursion_limit():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0 + 0.001
    y.backward()
    np.testing.assert_allclose(x.grad, [1.0])


# ---------------------------------------------------------------------------------------
# Grad mode (given, not a task)


def test_grad_mode_nests_restores_and_decorates():
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with enable_grad():
            assert is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled(), "restored after an exception"

    @no_grad()
    def evaluate(w):
        return w * 2.0

    assert not evaluate(Tensor([1.0], requires_grad=True)).requires_grad
    assert is_grad_enabled()


def test_no_grad_records_nothing_and_backward_then_fails():
    w = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (w * 2.0).sum()
    assert not y.requires_grad and y._parents == ()
    with pytest.raises(RuntimeError):
        y.backward()


def test_autograd_does_not_import_tensor_at_import_time():
    source = open(autograd.__file__, encoding="utf-8").read()
    top_level = [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
    assert not any("tensor" in ln for ln in top_level), top_level


# ---------------------------------------------------------------------------------------
# Task 05.3: unbroadcast


def reference_unbroadcast(grad, shape):
    """Slow and obvious: add each element of grad into the element of `shape` it came from."""
    out = np.zeros(shape)
    offset = grad.ndim - len(shape)
    for index in itertools.product(*map(range, grad.shape)):
        target = tuple(0 if n == 1 else i for i, n in zip(index[offset:], shape))
        out[target] += grad[index]
    return out


@pytest.mark.task("05.3")
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       seed=st.integers(0, 2**16))
def test_unbroadcast_sums_over_broadcast_axes(shapes, seed):
    grad = np.random.default_rng(seed).standard_normal(shapes.result_shape)
    for shape in shapes.input_shapes:
        got = unbroadcast(grad, shape)
        assert got.shape == shape
        np.testing.assert_allclose(got, reference_unbroadcast(grad, shape), rtol=1e-10, atol=1e-10)


@pytest.mark.task("05.3")
@pytest.mark.parametrize("grad_shape, shape", [((2, 3), (4,)), ((3,), (2, 3)), ((2, 3), (2, 1, 3))])
def test_unbroadcast_rejects_impossible_shapes(grad_shape, shape):
    with pytest.raises(ValueError, match=r"unbroadcast"):
        unbroadcast(np.ones(grad_shape), shape)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": lambda a, b: a.maximum(b),
}


@pytest.mark.task("05.3")
@pytest.mark.parametrize("name", list(BINARY))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcast_backward_has_operand_shapes_and_matches_finite_differences(name, shapes, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0])
    b = rng.uniform(0.5, 2.0, shapes.input_shapes[1]) * rng.choice([-1.0, 1.0], shapes.input_shapes[1])
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    BINARY[name](ta, tb).sum().backward()
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    assert gradcheck(BINARY[name], [a, b])


@pytest.mark.task("05.3")
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       seed=st.integers(0, 2**16))
def test_add_backward_is_the_sum_over_broadcast_axes(shapes, seed):
    rng = np.random.default_rng(seed)
    ta = Tensor(rng.standard_normal(shapes.input_shapes[0]), requires_grad=True)
    tb = Tensor(rng.standard_normal(shapes.input_shapes[1]), requires_grad=True)
    g = rng.standard_normal(shapes.result_shape).astype(np.float32)
    (ta + tb).backward(g)
    for t in (ta, tb):
        np.testing.assert_allclose(t.grad, reference_unbroadcast(g.astype(np.float64), t.shape),
                                   rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Task 05.4: gradcheck, and every op's gradient through the engine

rng0 = np.random.default_rng(0)
A, B = rng0.standard_normal((3, 4)), rng0.standard_normal((3, 4))
POS = rng0.uniform(0.5, 2.0, (3, 4))
X = rng0.standard_normal((2, 3, 4))
ROWS = np.array([0, 2, 2])

OPS = [
    ("add", lambda a, b: a + b, (A, B)),
    ("add-broadcast", lambda a, b: a + b, (A, B[0])),
    ("radd-number", lambda a: 2.0 + a, (A,)),
    ("mul", lambda a, b: a * b, (A, B)),
    ("mul-broadcast", lambda a, b: a * b, (X, B[:, :1])),
    ("neg", lambda a: -a, (A,)),
    ("sub", lambda a, b: a - b, (A, B)),
    ("rsub-number", lambda a: 1.0 - a, (A,)),
    ("div", lambda a, b: a / b, (A, POS)),
    ("rdiv-number", lambda a: 1.0 / a, (POS,)),
    ("pow", lambda a: a ** 3, (A,)),
    ("pow-fraction", lambda a: a ** 0.5, (POS,)),
    ("matmul", lambda a, b: a @ b, (A, B.T)),
    ("matmul-batched", lambda a, b: a @ b, (X, B.T)),
    ("matmul-both-batched", lambda a, b: a @ b, (X, rng0.standard_normal((2, 4, 2)))),
    ("matmul-vector", lambda a, b: a @ b, (A, B[0])),
    ("vector-matmul", lambda a, b: a @ b, (A[:, 0], B)),
    ("dot", lambda a, b: a @ b, (A[0], B[0])),
    ("exp", lambda a: a.exp(), (A,)),
    ("log", lambda a: a.log(), (POS,)),
    ("sqrt", lambda a: a.sqrt(), (POS,)),
    ("abs", lambda a: a.abs(), (POS * np.sign(A),)),
    ("maximum", lambda a, b: a.maximum(b), (A, B)),
    ("relu", lambda a: a.maximum(0.0), (POS * np.sign(A),)),
    ("sum", lambda a: a.sum(), (X,)),
    ("sum-axes-keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), (X,)),
    ("mean", lambda a: a.mean(axis=1), (X,)),
    ("max", lambda a: a.max(), (X,)),
    ("max-axis", lambda a: a.max(axis=-1, keepdims=True), (X,)),
    ("reshape", lambda a: a.reshape(6, 4), (X,)),
    ("transpose", lambda a: a.transpose(1, 2, 0), (X,)),
    ("T", lambda a: a.T, (A,)),
    ("getitem-slice", lambda a: a[:, 1:3], (X,)),
    ("getitem-rows", lambda a: a[ROWS], (A,)),
    ("getitem-pairs", lambda a: a[ROWS, np.array([1, 1, 0])], (A,)),
    ("softmax-like", lambda a: (a - a.max(axis=1, keepdims=True)).exp()
     / (a - a.max(axis=1, keepdims=True)).exp().sum(axis=1, keepdims=True), (A,)),
    ("mlp", lambda x, w, b: ((x @ w + b).maximum(0.0) ** 2).mean(), (A, B.T, B[:3, 0])),
]


@pytest.mark.task("05.2")
@pytest.mark.task("05.4")
@pytest.mark.parametrize("fn, args", [pytest.param(fn, args, id=name) for name, fn, args in OPS])
def test_every_op_gradient_through_engine_matches_finite_differences(fn, args):
    assert gradcheck(fn, args)


@pytest.mark.task("05.4")
def test_gradcheck_names_input_element_expected_received():
    def bad_second(a, b):  # forward a * b, but claims dL/db = 2 g a
        return Tensor.from_op(a.data * b.data, (a, b), lambda g: (g * b.data, 2 * g * a.data), op="bad")

    with pytest.raises(GradcheckError) as info:
        gradcheck(bad_second, [np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    msg = str(info.value)
    assert "input 1" in msg and "element (0,)" in msg, msg
    # Element (0,): expected dL/db0 = w0 * a0, received 2 w0 a0 (w is the random projection).
    w0 = np.random.default_rng(0).standard_normal(2)[0]
    assert f"expected {w0 * 1.0:.6g}" in msg and f"received {2 * w0:.6g}" in msg, msg
    assert isinstance(info.value, AssertionError), "a failed check fails a test like an assert"


@pytest.mark.task("05.4")
def test_gradcheck_runs_in_float64_and_restores_dtype():
    seen = []

    def square(a):
        seen.append(a.dtype)
        return a * a

    assert gradcheck(square, [np.array([0.3, -1.7], dtype=np.float32)])
    assert set(seen) == {np.dtype(np.float64)}
    assert get_default_dtype() == np.float32

    def broken(a):
        return Tensor.from_op(a.data ** 2, (a,), lambda g: (g,), op="broken")

    with pytest.raises(GradcheckError):
        gradcheck(broken, [np.array([2.0])])
    assert get_default_dtype() == np.float32, "restored after a failure too"


@pytest.mark.task("05.4")
def test_gradcheck_catches_a_subtly_wrong_gradient():
    def off_by_a_bit(a):
        return Tensor.from_op(np.exp(a.data), (a,), lambda g: (g * np.exp(a.data) * 1.01,), op="exp_ish")

    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(off_by_a_bit, [np.array([[0.1, 0.2], [0.3, 0.4]])])


@pytest.mark.task("05.4")
def test_gradcheck_does_not_modify_its_inputs():
    a = np.array([1.0, 2.0, 3.0])
    t = Tensor(a.copy(), requires_grad=True)
    gradcheck(lambda x: x.exp(), [a])
    gradcheck(lambda x: x.exp(), [t])
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(t.data, [1.0, 2.0, 3.0])
    assert t.grad is None


# ---------------------------------------------------------------------------------------
# PyTorch as a second reference (skipped when it is not installed)


def test_two_layer_network_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    w1, b1 = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    w2, b2 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)

    params = [Tensor(p, requires_grad=True) for p in (w1, b1, w2, b2)]
    W1, B1, W2, B2 = params
    z = (Tensor(x) @ W1.T + B1).maximum(0.0) @ W2.T + B2
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    loss = -logp[np.arange(8), y].mean()
    loss.backward()

    tparams = [torch.tensor(p, requires_grad=True) for p in (w1, b1, w2, b2)]
    tw1, tb1, tw2, tb2 = tparams
    tz = torch.relu(torch.tensor(x) @ tw1.T + tb1) @ tw2.T + tb2
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(y))
    tloss.backward()

    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    for name, p, tp in zip(("w1", "b1", "w2", "b2"), params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_broadcast_and_reduction_grads_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, (3, 1)).astype(np.float32)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    (ta * tb - tb.log()).abs().mean(axis=(0, 2)).sum().backward()
    pa, pb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (pa * pb - pb.log()).abs().mean(dim=(0, 2)).sum().backward()
    np.testing.assert_allclose(ta.grad, pa.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tb.grad, pb.grad.numpy(), rtol=1e-5, atol=1e-6)
