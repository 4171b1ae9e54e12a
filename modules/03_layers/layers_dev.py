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
# # Module 03: Layers
#
# > Linear, Sequential and Dropout, built on the Module base class; re-exports Module and the activations.
#
# A layer is a differentiable function with parameters. `Linear` is the workhorse:
# almost every network, including the convolutional ones of Module 09 (a convolution
# is a Linear applied to image patches), spends most of its time in `x @ W.T`.
# `Sequential` chains layers, and `Dropout` is the first layer whose behaviour depends
# on the training mode that `Module.train()` and `Module.eval()` switch.
#
# The base class `Module` and the activations were written in Module 02 (defining
# `Module` there avoids a circular import between activations and layers). This file
# re-exports them, so every building block of a model can be imported from one place:
# `from tinytorch.core.layers import Module, Linear, ReLU, Sequential`.

# %%
#| default_exp core.layers

# %%
#| export
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from tinytorch.core.activations import GELU, Module, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.checks import check_fraction, check_int
from tinytorch.core.tensor import Tensor, get_rng

# Names defined in Module 02, public here as well.
_all_ = ["Module", "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax"]

# %% [markdown]
# ## 1. Linear
#
# `Linear(in_features, out_features)` holds `weight` of shape `(out_features,
# in_features)` (one row per output unit, the rule the pruning module relies on:
# axis 0 is the output) and `bias` of shape `(out_features,)`.
#
# The starting values matter. If the weights are too large, activations grow layer
# after layer; too small, and they shrink to nothing. PyTorch's default draws both
# weight and bias from `U(-k, k)` with `k = 1 / sqrt(in_features)`, so the variance
# of each output is about `1/3` of the input's whatever the layer width. TinyTorch
# does the same, drawing from the shared generator `get_rng()`, so that
# `manual_seed(0)` makes every model reproducible.
#
# ### Forward and backward in one op
#
# The forward is one line, `x @ W.T + b`. Written with Tensor operations it would
# become three graph nodes (transpose, matmul, add); written as one op it is one
# node, and the backward is the three formulas every deep-learning course derives.
# With `g = dL/dy` of shape `(N, out)`:
#
# - `dL/dx = g @ W`, shape `(N, in)`: skipped when `x` does not require grad (the
#   input batch), which saves one matmul per step in the first layer;
# - `dL/dW = g.T @ x`, shape `(out, in)`: a sum over the batch of outer products;
# - `dL/db = g.sum(axis=0)`, shape `(out,)`: the bias was broadcast over the batch,
#   so its gradient sums over it.
#
# Inputs with more leading dimensions, `(B, T, in)`, work too: the backward folds
# them into one batch dimension first. A wrong last dimension raises a `ValueError`
# that shows the input's shape and the weight's, the two facts needed to fix it.

# %% nbgrader={"grade": false, "grade_id": "linear", "solution": true}
#| export
class Linear(Module):
    """y = x W^T + b, with `weight` of shape (out_features, in_features) and `bias` (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        """Create the parameters, drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)).

        Task 03.1: draw `weight` and `bias` (or set `bias = None`) from `get_rng()`.

        Args:
            in_features: size of each input's last dimension.
            out_features: number of output units.
            bias: whether to add a learned bias.

        Raises:
            TypeError: a size is not an integer.
            ValueError: a size is smaller than 1.
        """
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=1)
        self.out_features = check_int("out_features", out_features, minimum=1)
        ### BEGIN SOLUTION
        bound = 1.0 / math.sqrt(self.in_features)
        rng = get_rng()
        # Tensor() stores the default dtype (float32), so the float64 draws are cast once.
        self.weight = Tensor(rng.uniform(-bound, bound, (self.out_features, self.in_features)), requires_grad=True)
        self.bias = Tensor(rng.uniform(-bound, bound, self.out_features), requires_grad=True) if bias else None
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Tensor) -> Tensor:
        """Compute x W^T + b for input of shape (..., in_features).

        Task 03.2: one differentiable op with its three gradients.

        Raises:
            TypeError: `x` is not a Tensor.
            ValueError: the last dimension of `x` is not `in_features`.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear expects a Tensor, got {type(x).__name__}")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) needs input of shape "
                             f"(..., {self.in_features}), got {x.shape} (weight shape {self.weight.shape})")
        ### BEGIN SOLUTION
        weight = self.weight.data
        out = x.data @ weight.T
        if self.bias is not None:
            out += self.bias.data
        parents = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)

        def backward(grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
            # Fold any leading batch dimensions into one, so each gradient is one matmul.
            grad2d = grad.reshape(-1, weight.shape[0])
            grad_x = grad @ weight if x.requires_grad else None
            grads = (grad_x, grad2d.T @ x.data.reshape(-1, weight.shape[1]))
            return grads if len(parents) == 2 else grads + (grad2d.sum(axis=0),)

        return Tensor.from_op(out, parents, backward, op="linear")
        ### END SOLUTION

# %%
if __name__ == "__main__":
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    layer = Linear(4, 3)
    print(layer, layer.weight.shape, layer.bias.shape)
    print(layer(Tensor(np.ones((2, 4), dtype=np.float32))).data)

# %% nbgrader={"grade": true, "grade_id": "test-linear-init", "locked": true, "points": 1}
def test_unit_linear_init():
    """Task 03.1"""
    layer = Linear(400, 30)
    assert layer.weight.shape == (30, 400) and layer.bias.shape == (30,)
    assert layer.weight.data.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / math.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound  # uses the whole range
    assert Linear(3, 2, bias=False).bias is None
    print("ok: Linear init")

# %% nbgrader={"grade": true, "grade_id": "test-linear-forward", "locked": true, "points": 2}
def test_unit_linear_forward():
    """Task 03.2"""
    layer = Linear(3, 2)
    xs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    x = Tensor(xs, requires_grad=True)
    y = layer(x)
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(y.data, xs @ w.T + b, rtol=1e-6)
    grad = np.ones((5, 2), dtype=np.float32)
    grad_x, grad_w, grad_b = y._backward(grad)  # the op's closure; Module 05 chains them
    np.testing.assert_allclose(grad_x, grad @ w, rtol=1e-6)
    np.testing.assert_allclose(grad_w, grad.T @ xs, rtol=1e-5)
    np.testing.assert_allclose(grad_b, [5.0, 5.0])
    try:
        layer(Tensor(np.ones((5, 4), dtype=np.float32)))
    except ValueError as err:
        assert "(5, 4)" in str(err) and "(2, 3)" in str(err), err
    else:
        raise AssertionError("a wrong input width must raise ValueError")
    print("ok: Linear forward and backward")

# %% [markdown]
# ## 2. Sequential: a list of layers that is itself a layer
#
# `Sequential(Linear(64, 128), ReLU(), Linear(128, 10))` calls its layers in order.
# It stores layer `i` as the attribute named `"i"`, so the attribute walk of Module
# 02 names the parameters `"0.weight"`, `"2.bias"`, exactly as PyTorch does, and a
# saved `state_dict` can be compared key by key with a PyTorch model's.
#
# It behaves like a list: `len(model)`, `for layer in model`, `model[0]`,
# `model[-1]`, `model[1] = other` (surgery), and `model[:2]`, which returns a new
# `Sequential` sharing the same layers (the first two layers as a feature extractor).

# %% nbgrader={"grade": false, "grade_id": "sequential", "solution": true}
#| export
class Sequential(Module):
    """Layers applied in order; children named "0", "1", ...; indexable like a list."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> Sequential:
        """Add `layer` at the end, under the next index; returns self."""
        if not isinstance(layer, Module):
            hint = " (pass layers as separate arguments: Sequential(*layers))" if isinstance(layer, (list, tuple)) else ""
            raise TypeError(f"Sequential layer {len(self)} must be a Module, got {type(layer).__name__}{hint}")
        # NOTE: not len(self), which walks every attribute: appending N layers would take N**2 steps.
        n = vars(self).get("_next", 0)
        while str(n) in vars(self):  # layers set by name, or an object made before this counter
            n += 1
        setattr(self, str(n), layer)
        self._next = n + 1
        return self

    def _layers(self) -> list[Module]:
        return [value for name, value in vars(self).items() if name.isdigit()]

    def __len__(self) -> int:
        return len(self._layers())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers())

    def _position(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a Sequential of {n} layers")
        return index % n

    def __getitem__(self, index: int | slice) -> Module:
        """Layer `index`, or a new Sequential sharing the layers of a slice.

        Task 03.3: a slice returns `Sequential`, an integer the layer itself.
        """
        ### BEGIN SOLUTION
        if isinstance(index, slice):
            return Sequential(*self._layers()[index])
        return self._layers()[self._position(index)]
        ### END SOLUTION

    def __setitem__(self, index: int, layer: Module) -> None:
        """Replace layer `index` (model surgery); the name stays the same."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential layer {index} must be a Module, got {type(layer).__name__}")
        setattr(self, str(self._position(index)), layer)

    def forward(self, x: Tensor) -> Tensor:
        """Feed `x` through every layer in order.

        Task 03.3: each layer's output is the next one's input.
        """
        ### BEGIN SOLUTION
        for layer in self._layers():
            x = layer(x)
        return x
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-sequential", "locked": true, "points": 2}
def test_unit_sequential():
    """Task 03.3"""
    model = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(model) == 3 and isinstance(model[1], ReLU) and model[-1] is model[2]
    head = model[:2]
    assert isinstance(head, Sequential) and len(head) == 2 and head[0] is model[0]
    x = Tensor(np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32))
    by_hand = model[2](model[1](model[0](x)))
    np.testing.assert_allclose(model(x).data, by_hand.data, rtol=1e-6)
    print("ok: Sequential")

# %% [markdown]
# ## 3. Dropout: a layer that behaves differently in training
#
# During training, Dropout zeroes each activation with probability `p`, so the
# network cannot rely on any single unit. *Inverted* dropout scales the survivors by
# `1 / (1 - p)` at training time, which keeps the expected value of every activation
# unchanged; at evaluation time the layer is then simply the identity, with nothing
# to rescale. The mask comes from `get_rng()`, so `manual_seed` makes a run
# repeatable, and the backward pass multiplies by the same scaled mask.

# %% nbgrader={"grade": false, "grade_id": "dropout", "solution": true}
#| export
class Dropout(Module):
    """Zero each element with probability p in training and scale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_fraction("Dropout probability p", p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Tensor) -> Tensor:
        """Apply inverted dropout in training mode; return `x` itself in eval mode or when p = 0.

        Task 03.4: draw the keep-mask from `get_rng()`, scale by 1/(1-p), reuse it in backward.
        """
        if not self.training or self.p == 0.0:
            return x
        ### BEGIN SOLUTION
        keep = get_rng().random(x.shape, dtype=np.float32) >= self.p
        scale = keep.astype(x.data.dtype) / (1.0 - self.p)

        def backward(grad: np.ndarray) -> tuple[np.ndarray]:
            return (grad * scale,)

        return Tensor.from_op(x.data * scale, (x,), backward, op="dropout")
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-dropout", "locked": true, "points": 2}
def test_unit_dropout():
    """Task 03.4"""
    drop = Dropout(0.25)
    x = Tensor(np.ones((200, 100), dtype=np.float32), requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.02, kept.mean()
    np.testing.assert_allclose(y.data[kept], 1 / 0.75, rtol=1e-6)
    (grad,) = y._backward(np.ones_like(y.data))
    np.testing.assert_array_equal(grad, y.data)  # same mask, same scale
    drop.eval()
    assert drop(x) is x
    print("ok: Dropout")

# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_linear_init()
    test_unit_linear_forward()
    test_unit_sequential()
    test_unit_dropout()

# %%
if __name__ == "__main__":
    test_module()
    print("Module 03: all inline tests passed")
