"""Module 03, tasks 03.1-03.4: Linear (PyTorch's init, forward and gradients against
PyTorch and finite differences), Sequential (names, indexing, slicing, surgery) and
inverted Dropout; bad arguments raise errors that name the values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.layers import GELU, Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh
from tinytorch.core.tensor import Tensor, manual_seed
from gradients import closure_gradcheck

RTOL, ATOL = 1e-5, 1e-6


def mlp() -> Sequential:
    return Sequential(Linear(5, 8), ReLU(), Linear(8, 6), Tanh(), Linear(6, 3))


def to_torch(torch, model: Sequential):
    """The same architecture in PyTorch with our weights copied in (by state_dict keys)."""
    nn = torch.nn
    layers = {Linear: lambda m: nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
              ReLU: lambda m: nn.ReLU(), Tanh: lambda m: nn.Tanh()}
    theirs = nn.Sequential(*[layers[type(m)](m) for m in model])
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return theirs


def test_layers_module_re_exports_module_and_activations():
    from tinytorch.core import activations

    for cls in (Module, ReLU, Sigmoid, Tanh, GELU, Softmax):
        assert getattr(activations, cls.__name__) is cls


# --- 03.1 Linear init -------------------------------------------------------------------
@pytest.mark.task("03.1")
def test_linear_shapes_dtype_and_bound():
    layer = Linear(50, 20)
    assert layer.weight.shape == (20, 50) and layer.bias.shape == (20,)
    assert layer.weight.data.dtype == np.float32 and layer.weight.requires_grad and layer.bias.requires_grad
    bound = 1 / math.sqrt(50)
    for t in (layer.weight, layer.bias):
        assert np.abs(t.data).max() <= bound
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]


@pytest.mark.task("03.1")
def test_linear_init_is_uniform_with_pytorch_variance():
    w = Linear(256, 512).weight.data.astype(np.float64)
    bound = 1 / 16
    assert abs(w.mean()) < 0.01 * bound  # about 6 standard errors of the mean
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.02)  # U(-k, k) has variance k^2 / 3
    assert np.abs(w).max() > 0.99 * bound


@pytest.mark.task("03.1")
def test_linear_init_draws_from_the_shared_seeded_generator():
    manual_seed(123)
    a = Linear(4, 3)
    manual_seed(123)
    b = Linear(4, 3)
    c = Linear(4, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


@pytest.mark.task("03.1")
def test_linear_without_bias():
    layer = Linear(3, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((4, 3), dtype=np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T, rtol=RTOL)


@pytest.mark.parametrize("args, error, named", [
    ((0, 3), ValueError, "in_features must be an int >= 1, got 0"),
    ((3, -2), ValueError, "out_features must be an int >= 1, got -2"),
    ((3.0, 2), TypeError, "in_features must be an int >= 1, got 3.0"),
    (("3", 2), TypeError, "in_features must be an int >= 1, got '3'"),
    ((True, 2), TypeError, "in_features must be an int >= 1, got True"),
])
def test_linear_rejects_bad_sizes(args, error, named):
    with pytest.raises(error, match=named):
        Linear(*args)


# --- 03.2 Linear forward / backward -------------------------------------------------------
@pytest.mark.task("03.2")
@pytest.mark.parametrize("shape", [(7, 5), (5,), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = Linear(5, 4, bias=bias)
    theirs = torch.nn.Linear(5, 4, bias=bias)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape[:-1] + (4,)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(g))
    out = layer(Tensor(x, requires_grad=True))
    grads = out._backward(g)
    np.testing.assert_allclose(out.data, theirs(torch.tensor(x)).detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(grads[1], theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    if bias:
        np.testing.assert_allclose(grads[2], theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.task("03.2")
def test_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(1)

    def linear(x, w, b):
        layer = Linear(4, 3)
        layer.weight, layer.bias = w, b
        return layer(x)

    arrays = [rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)]
    closure_gradcheck(linear, *arrays)
    closure_gradcheck(linear, rng.standard_normal((2, 3, 4)), arrays[1], arrays[2])  # batched input


@pytest.mark.task("03.2")
def test_linear_skips_the_input_gradient_when_the_input_is_data():
    layer = Linear(4, 2)
    grad_x, grad_w, grad_b = layer(Tensor(np.ones((3, 4), dtype=np.float32)))._backward(np.ones((3, 2), dtype=np.float32))
    assert grad_x is None and grad_w.shape == (2, 4) and grad_b.shape == (2,)


def test_linear_wrong_width_names_both_shapes():
    layer = Linear(64, 10)
    with pytest.raises(ValueError, match=r"\(32, 65\).*\(10, 64\)"):
        layer(Tensor(np.zeros((32, 65), dtype=np.float32)))
    with pytest.raises(TypeError, match="ndarray"):
        layer(np.zeros((32, 64), dtype=np.float32))


# --- 03.3 Sequential -----------------------------------------------------------------------
def test_sequential_names_match_torch_state_dict_keys():
    torch = pytest.importorskip("torch")
    model = mlp()
    theirs = to_torch(torch, model)
    assert list(model.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in model.named_modules()] == [n for n, _ in theirs.named_modules()]


@pytest.mark.task("03.3")
def test_sequential_forward_matches_torch():
    # Gradients through the whole chain need Module 05's engine; Module 06's tests train
    # this kind of network side by side with PyTorch.
    torch = pytest.importorskip("torch")
    model = mlp()
    theirs = to_torch(torch, model)
    x = np.random.default_rng(2).standard_normal((9, 5)).astype(np.float32)
    np.testing.assert_allclose(model(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.task("03.3")
def test_sequential_behaves_like_a_list():
    model = mlp()
    layers = list(model)
    assert len(model) == 5 and layers[0] is model[0] and model[-1] is model[4]
    head = model[:3]
    assert isinstance(head, Sequential) and len(head) == 3
    assert all(a is b for a, b in zip(head, layers[:3]))
    assert [n for n, _ in model[1:].named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    x = Tensor(np.ones((2, 5), dtype=np.float32))
    np.testing.assert_allclose(model[3:](model[:3](x)).data, model(x).data, rtol=1e-6)
    with pytest.raises(IndexError, match="index 5 is out of range for a Sequential of 5 layers"):
        model[5]


@pytest.mark.task("03.3")
def test_sequential_setitem_is_surgery_under_the_same_name():
    model = mlp()
    new = Linear(8, 6)
    model[2] = new
    assert model[2] is new and dict(model.named_parameters())["2.weight"] is new.weight
    model[-1] = Linear(6, 2)
    assert model(Tensor(np.ones((1, 5), dtype=np.float32))).shape == (1, 2)
    with pytest.raises(TypeError, match="must be a Module, got int"):
        model[0] = 3


def test_nested_sequential_names():
    model = Sequential(Linear(2, 3), Sequential(ReLU(), Linear(3, 1)))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.1.weight", "1.1.bias"]


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match=r"layer 1 must be a Module, got function"):
        Sequential(ReLU(), lambda x: x)
    with pytest.raises(TypeError, match=r"Sequential\(\*layers\)"):
        Sequential([Linear(2, 2)])


def test_sequential_repr():
    assert repr(Sequential(Linear(2, 3), ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)")


# --- 03.4 Dropout ---------------------------------------------------------------------------
@pytest.mark.task("03.4")
@given(st.floats(0.05, 0.9))
def test_dropout_keeps_1_minus_p_and_preserves_the_mean(p):
    x = Tensor(np.ones((100, 200), dtype=np.float32), requires_grad=True)
    y = Dropout(p)(x)
    kept = y.data != 0
    # 20,000 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - p.
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_allclose(y.data[kept], 1 / (1 - p), rtol=1e-6)
    (grad,) = y._backward(np.ones_like(y.data))
    np.testing.assert_array_equal(grad, y.data)  # the backward uses the same scaled mask


@pytest.mark.task("03.4")
def test_dropout_is_identity_in_eval_and_at_p_zero():
    x = Tensor(np.arange(6, dtype=np.float32), requires_grad=True)
    model = Sequential(Linear(6, 6), Dropout(0.5))
    model.eval()
    assert model[1](x) is x
    assert Dropout(0.0)(x) is x
    model.train()
    assert model[1].training and not np.array_equal(model[1](Tensor(np.ones(1000))).data, np.ones(1000))


@pytest.mark.task("03.4")
def test_dropout_mask_is_reproducible_with_manual_seed():
    x = Tensor(np.ones(50, dtype=np.float32))
    manual_seed(7)
    a = Dropout(0.3)(x).data
    manual_seed(7)
    b = Dropout(0.3)(x).data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=rf"p must be a number in \[0, 1\), got {p}"):
        Dropout(p)


@pytest.mark.parametrize("p", ["0.5", None, True])
def test_dropout_rejects_p_that_is_not_a_number(p):
    with pytest.raises(ValueError, match=rf"p must be a number in \[0, 1\), got {p!r}"):
        Dropout(p)
