"""Module 01: Tensor construction, forward ops against NumPy, local derivatives against
finite differences, and clear errors on bad input.

Gradients here come from each op's recorded closure (`out._backward(g)`), not from the
engine of Module 05, so these tests check exactly what Module 01 asks for. Operands of a
gradient check have equal shapes: reducing a broadcast gradient is Module 05's `unbroadcast`.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core import tensor as T
from tinytorch.core.autograd import no_grad, numerical_grad
from tinytorch.core.tensor import Tensor, get_rng, manual_seed, set_default_dtype

# Float32 results against a float64 NumPy reference: float32 keeps ~7 digits.
RTOL, ATOL = 1e-5, 1e-6


def local_grads(fn, *arrays, seed=0):
    """Each input's gradient from the output's closure, and float64 central differences."""
    previous = set_default_dtype(np.float64)
    try:
        xs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
        out = fn(*xs)
        g = np.random.default_rng(seed).standard_normal(out.shape)
        return list(out._backward(g)), numerical_grad(fn, xs, g)
    finally:
        set_default_dtype(previous)


def assert_local_grads(fn, *arrays):
    analytic, numeric = local_grads(fn, *arrays)
    assert len(analytic) == len(arrays), f"one gradient per parent, got {len(analytic)}"
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert a is not None, f"input {i} requires grad but got None"
        assert np.shape(a) == n.shape, f"input {i}: gradient shape {np.shape(a)} != {n.shape}"
        np.testing.assert_allclose(a, n, rtol=1e-4, atol=1e-6, err_msg=f"gradient of input {i}")


# ---------------------------------------------------------------------------------------
# Task 01.1: construction and validation


@pytest.mark.task("01.1")
@pytest.mark.parametrize("data", [3, 2.5, True, [1, 2, 3], [[1.5, 2], [3, 4]], np.arange(6).reshape(2, 3),
                                  np.ones((2, 2), dtype=np.float64), np.float16(1.5)])
def test_construction_gives_float32_array(data):
    t = Tensor(data)
    assert isinstance(t.data, np.ndarray) and t.data.dtype == np.float32
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=np.float32))
    assert t.grad is None and t.requires_grad is False
    assert t.shape == np.shape(data) and t.ndim == np.ndim(data) and t.size == np.size(data)
    assert t.dtype == np.float32


@pytest.mark.task("01.1")
def test_float32_array_is_not_copied():
    a = np.ones((3, 4), dtype=np.float32)
    assert Tensor(a).data is a
    t = Tensor(a, requires_grad=True)
    assert Tensor(t).data is a, "Tensor(tensor) shares the data"
    assert t.numpy() is a
    assert t.detach().data is a and not t.detach().requires_grad


@pytest.mark.task("01.1")
@pytest.mark.parametrize("bad, error, words", [
    ("abc", TypeError, "abc"),
    (["1", "2"], TypeError, "'1'"),
    (None, TypeError, "None"),
    ({"a": 1}, TypeError, "dict"),
    (np.array([1 + 2j]), TypeError, "complex"),
    ([[1, 2], [3]], ValueError, "[[1, 2], [3]]"),
])
def test_bad_data_raises_clear_error(bad, error, words):
    with pytest.raises(error) as info:
        Tensor(bad)
    assert words in str(info.value), f"message should show the value: {info.value}"


@pytest.mark.task("01.1")
def test_small_helpers():
    t = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert len(t) == 2
    assert Tensor([[7.0]]).item() == 7.0 and isinstance(Tensor(7.0).item(), float)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        t.item()
    with pytest.raises(TypeError):
        len(Tensor(1.0))
    text = repr(t)
    assert text.startswith("Tensor(") and "requires_grad=True" in text and "6." in text
    np.testing.assert_array_equal(np.asarray(t), t.data)


def test_numpy_conversion_copies_only_when_asked():
    t = Tensor([1.0, 2.0])
    assert np.asarray(t) is t.data, "np.asarray shares the data"
    copied = np.array(t)
    copied[0] = 99.0
    assert t.data[0] == 1.0, "np.array(t) must copy: editing the copy changed the tensor"
    assert np.array(t, dtype=np.float64).dtype == np.float64


def test_from_op_records_graph_only_when_needed():
    a = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])

    def backward(g):
        return g, g

    out = Tensor.from_op(np.array([4.0, 6.0]), (a, c), backward, op="demo")
    assert out.requires_grad and out._parents == (a, c) and out._backward is backward
    assert out.data.dtype == np.float32, "from_op casts the result to float32"
    const = Tensor.from_op(np.array([1.0]), (c, c), backward, op="demo")
    assert not const.requires_grad and const._parents == () and const._backward is None
    with no_grad():
        off = Tensor.from_op(np.array([1.0]), (a,), backward, op="demo")
    assert not off.requires_grad and off._parents == (), "no graph under no_grad"
    scalar = Tensor.from_op(np.float64(2.0), (a,), backward)
    assert isinstance(scalar.data, np.ndarray) and scalar.shape == ()


def test_manual_seed_makes_draws_repeatable():
    rng = get_rng()
    manual_seed(123)
    first = get_rng().standard_normal(5)
    manual_seed(123)
    assert get_rng() is rng, "reseeding keeps the generator object others may hold"
    np.testing.assert_array_equal(rng.standard_normal(5), first)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            manual_seed(bad)


def test_default_dtype_switch_is_checked_and_restorable():
    previous = set_default_dtype(np.float64)
    try:
        assert Tensor([1.0]).dtype == np.float64
    finally:
        set_default_dtype(previous)
    assert Tensor([1.0]).dtype == np.float32
    with pytest.raises(ValueError, match="int32"):
        set_default_dtype(np.int32)


# ---------------------------------------------------------------------------------------
# Forward values against NumPy, and local derivatives against finite differences

rng0 = np.random.default_rng(0)
A34, B34 = rng0.standard_normal((3, 4)), rng0.standard_normal((3, 4))
POS34 = rng0.uniform(0.5, 2.0, (3, 4))
X234 = rng0.standard_normal((2, 3, 4))

# (task, name, tinytorch function, NumPy reference, inputs)
FORWARD_CASES = [
    ("01.2", "add", lambda a, b: a + b, np.add, (A34, B34)),
    ("01.2", "mul", lambda a, b: a * b, np.multiply, (A34, B34)),
    ("01.3", "neg", lambda a: -a, np.negative, (A34,)),
    ("01.3", "sub", lambda a, b: a - b, np.subtract, (A34, B34)),
    ("01.3", "div", lambda a, b: a / b, np.divide, (A34, POS34)),
    ("01.3", "pow2", lambda a: a ** 2, lambda a: a ** 2, (A34,)),
    ("01.3", "pow-1.5", lambda a: a ** -1.5, lambda a: a ** -1.5, (POS34,)),
    ("01.4", "matmul", lambda a, b: a @ b, np.matmul, (A34, B34.T)),
    ("01.4", "matmul-batched", lambda a, b: a @ b, np.matmul, (X234, rng0.standard_normal((2, 4, 2)))),
    ("01.4", "matmul-vector", lambda a, b: a @ b, np.matmul, (A34, B34[0])),
    ("01.4", "vector-matmul", lambda a, b: a @ b, np.matmul, (A34[:, 0], B34)),
    ("01.4", "vector-dot", lambda a, b: a @ b, np.matmul, (A34[0], B34[0])),
    ("01.5", "exp", lambda a: a.exp(), np.exp, (A34,)),
    ("01.5", "log", lambda a: a.log(), np.log, (POS34,)),
    ("01.5", "sqrt", lambda a: a.sqrt(), np.sqrt, (POS34,)),
    ("01.5", "abs", lambda a: a.abs(), np.abs, (A34,)),
    ("01.6", "maximum", lambda a, b: a.maximum(b), np.maximum, (A34, B34)),
    ("01.7", "sum", lambda a: a.sum(), np.sum, (X234,)),
    ("01.7", "sum-axis", lambda a: a.sum(axis=1), lambda a: a.sum(axis=1), (X234,)),
    ("01.7", "sum-keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True),
     lambda a: a.sum(axis=(0, 2), keepdims=True), (X234,)),
    ("01.7", "mean", lambda a: a.mean(), np.mean, (X234,)),
    ("01.7", "mean-axis", lambda a: a.mean(axis=-1), lambda a: a.mean(axis=-1), (X234,)),
    ("01.8", "max", lambda a: a.max(), np.max, (X234,)),
    ("01.8", "max-axis", lambda a: a.max(axis=1), lambda a: a.max(axis=1), (X234,)),
    ("01.8", "max-keepdims", lambda a: a.max(axis=0, keepdims=True),
     lambda a: a.max(axis=0, keepdims=True), (X234,)),
    ("01.9", "reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), (X234,)),
    ("01.9", "reshape-tuple", lambda a: a.reshape((-1, 2)), lambda a: a.reshape(-1, 2), (X234,)),
    ("01.9", "transpose", lambda a: a.transpose(2, 0, 1), lambda a: a.transpose(2, 0, 1), (X234,)),
    ("01.9", "T", lambda a: a.T, lambda a: a.T, (X234,)),
    ("01.10", "slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], (X234,)),
    ("01.10", "int-and-none", lambda a: a[0, None, -1], lambda a: a[0, None, -1], (X234,)),
    ("01.10", "int-array", lambda a: a[np.array([2, 0, 2])], lambda a: a[np.array([2, 0, 2])], (A34,)),
    ("01.10", "pairs", lambda a: a[np.array([0, 0, 2]), np.array([1, 1, 3])],
     lambda a: a[np.array([0, 0, 2]), np.array([1, 1, 3])], (A34,)),
    ("01.10", "mixed", lambda a: a[:, [3, 1, 3]], lambda a: a[:, [3, 1, 3]], (A34,)),
]


# Broadcasting in the forward pass only: reducing a broadcast gradient needs Module 05's
# unbroadcast, and tests/05_autograd checks those gradients.
BROADCAST_FORWARD_CASES = [
    ("01.2", "add-broadcast", lambda a, b: a + b, np.add, (X234, A34[0])),
    ("01.2", "mul-broadcast", lambda a, b: a * b, np.multiply, (X234, A34[:, :1])),
    ("01.4", "matmul-broadcast-batch", lambda a, b: a @ b, np.matmul, (X234, rng0.standard_normal((4, 2)))),
    ("01.6", "relu", lambda a: a.maximum(0.0), lambda a: np.maximum(a, 0.0), (A34,)),
]


def _cases(cases):
    return [pytest.param(fn, ref, args, id=name, marks=pytest.mark.task(task))
            for task, name, fn, ref, args in cases]


@pytest.mark.parametrize("fn, ref, args", _cases(FORWARD_CASES + BROADCAST_FORWARD_CASES))
def test_forward_matches_numpy(fn, ref, args):
    out = fn(*[Tensor(a) for a in args])
    assert isinstance(out, Tensor) and out.data.dtype == np.float32
    expected = ref(*[np.asarray(a, dtype=np.float32).astype(np.float64) for a in args])
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn, ref, args", _cases(FORWARD_CASES))
def test_local_derivative_matches_finite_differences(fn, ref, args):
    assert_local_grads(fn, *args)


@pytest.mark.task("01.2")
def test_python_numbers_and_arrays_on_either_side():
    a = Tensor(A34, requires_grad=True)
    for out, expected in ((a + 1, A34 + 1), (1 + a, 1 + A34), (2.0 * a, 2 * A34), (a * B34, A34 * B34),
                          (B34 * a, B34 * A34), (B34 + a, B34 + A34)):
        assert isinstance(out, Tensor) and out.requires_grad
        np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.task("01.3")
def test_reflected_sub_div_matmul():
    a = Tensor(POS34)
    np.testing.assert_allclose((1.0 - a).data, 1 - POS34, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose((2.0 / a).data, 2 / POS34, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose((B34.T @ a).data, B34.T @ POS34, rtol=RTOL, atol=ATOL)


@pytest.mark.task("01.2")
def test_constant_operand_gets_no_gradient_work():
    a = Tensor(A34, requires_grad=True)
    out = a * Tensor(B34)
    grads = out._backward(np.ones((3, 4), np.float32))
    assert grads[1] is None, "a parent that does not require grad gets None"
    np.testing.assert_allclose(grads[0], B34, rtol=RTOL)


@pytest.mark.task("01.6")
def test_maximum_tie_splits_gradient():
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([1.0, 5.0, 0.0], requires_grad=True)
    ga, gb = a.maximum(b)._backward(np.array([2.0, 2.0, 2.0], np.float32))
    np.testing.assert_allclose(ga, [1.0, 0.0, 2.0])
    np.testing.assert_allclose(gb, [1.0, 2.0, 0.0])


@pytest.mark.task("01.8")
def test_max_ties_share_gradient():
    x = Tensor([[1.0, 4.0, 4.0], [2.0, 2.0, 2.0]], requires_grad=True)
    (g,) = x.max(axis=1)._backward(np.array([3.0, 6.0], np.float32))
    np.testing.assert_allclose(g, [[0.0, 1.5, 1.5], [2.0, 2.0, 2.0]])


@pytest.mark.task("01.10")
def test_getitem_accepts_tensor_index_and_accumulates_repeats():
    x = Tensor(np.arange(5.0), requires_grad=True)
    out = x[Tensor([4, 4, 1])]
    np.testing.assert_array_equal(out.data, [4.0, 4.0, 1.0])
    (g,) = out._backward(np.ones(3, np.float32))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0, 0.0, 2.0])


# ---------------------------------------------------------------------------------------
# Broadcasting forward: property tests against NumPy

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
}
TASK_OF = {"add": "01.2", "mul": "01.2", "sub": "01.3", "div": "01.3", "maximum": "01.6"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.task(TASK_OF[n])) for n in BINARY])
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       seed=st.integers(0, 2**16))
def test_broadcasting_forward_equals_numpy(name, shapes, seed):
    fn, ref = BINARY[name]
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0]).astype(np.float32)
    b = rng.uniform(0.5, 2.0, shapes.input_shapes[1]).astype(np.float32)  # safe divisor
    out = fn(Tensor(a), Tensor(b))
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.data, ref(a, b), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------
# Clear errors on bad input


@pytest.mark.task("01.4")
@pytest.mark.parametrize("left, right", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 2, 3), (2, 4, 1)), ((5,), (2, 3))])
def test_matmul_shape_mismatch_names_shapes(left, right):
    with pytest.raises(ValueError) as info:
        Tensor(np.ones(left)) @ Tensor(np.ones(right))
    assert str(left) in str(info.value) and str(right) in str(info.value), str(info.value)


@pytest.mark.task("01.4")
def test_matmul_batch_mismatch_and_scalars():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(3, 4, 5\)"):
        Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="at least 1"):
        Tensor(2.0) @ Tensor([1.0])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.task(TASK_OF[n])) for n in BINARY])
def test_elementwise_shape_mismatch_names_shapes(name):
    fn, _ = BINARY[name]
    with pytest.raises(ValueError, match=r"\(2,\s?3\).*\(4,\s?5\)"):
        fn(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5))))


@pytest.mark.task("01.3")
def test_pow_needs_a_number():
    with pytest.raises(TypeError, match="exponent"):
        Tensor([1.0]) ** Tensor([2.0])
    with pytest.raises(TypeError, match="exponent"):
        Tensor([1.0]) ** "2"


@pytest.mark.task("01.9")
def test_reshape_and_transpose_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)
    with pytest.raises(ValueError, match=r"\(0, 0\)"):
        Tensor(np.ones((2, 3))).transpose(0, 0)
    with pytest.raises(ValueError, match=r"\(0, 5\).*\(2, 3\)"):
        Tensor(np.ones((2, 3))).transpose(0, 5)  # 5 % 2 == 1 must not pass as axis 1


@pytest.mark.task("01.10")
def test_index_out_of_range_raises():
    with pytest.raises(IndexError):
        Tensor(np.ones(3))[5]


# ---------------------------------------------------------------------------------------
# PyTorch as a second reference (skipped when it is not installed)


@pytest.mark.parametrize("fn, ref, args", _cases([c for c in FORWARD_CASES if c[1] in {
    "add", "div", "matmul-batched", "exp", "log", "max-axis", "mean-axis", "maximum", "pairs"}]))
def test_forward_and_local_grads_match_torch(fn, ref, args):
    torch = pytest.importorskip("torch")
    ours = [Tensor(a, requires_grad=True) for a in args]
    theirs = [torch.tensor(np.asarray(a, dtype=np.float32), requires_grad=True) for a in args]

    def torch_fn(*xs):
        # The same lambdas run on torch tensors, except methods torch spells differently.
        if fn is FORWARD_CASES[[c[1] for c in FORWARD_CASES].index("max-axis")][2]:
            return xs[0].max(dim=1).values
        return fn(*xs)

    out, tout = fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    tout.backward(torch.tensor(g))
    for i, (mine, t) in enumerate(zip(out._backward(g), theirs)):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"input {i}")


def test_module_exports_the_documented_names():
    for name in ("Tensor", "manual_seed", "get_rng", "add", "mul", "matmul", "maximum"):
        assert hasattr(T, name), name
