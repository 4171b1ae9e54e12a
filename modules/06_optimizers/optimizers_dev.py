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
# # Module 06: Optimizers
#
# > SGD with momentum and weight decay, Adam and AdamW with PyTorch's update rules, and post-step hooks.
#
# Autograd (Module 05) fills every parameter's `.grad`. An optimizer turns those
# gradients into a change of the weights. The simplest rule, `w -= lr * grad`, works
# but is slow on ill-conditioned problems; momentum and Adam fix that by keeping a
# little memory per weight. That memory (`optimizer.state`) is real: Adam keeps two
# extra arrays the size of the model, which the profiling module will count.
#
# The optimizer is also the natural place to enforce a constraint after every
# update, with a *post-step hook*. Module 16 uses exactly that to keep pruned weights
# at zero while the rest of the network is fine-tuned.

# %%
#| default_exp core.optimizers

# %%
#| export
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from tinytorch.core.tensor import Tensor

# %% [markdown]
# ## 1. The Optimizer base class
#
# Every optimizer holds:
#
# - `params`: the list of parameter Tensors, usually `model.parameters()`;
# - `lr`: the learning rate, an ordinary attribute, so a schedule can change it
#   between steps;
# - `state`: a list aligned with `params`; `state[i]` is a dict of arrays shaped like
#   `params[i]` (`"momentum_buffer"` for SGD, `"exp_avg"` and `"exp_avg_sq"` for
#   Adam), created on the first step that parameter takes, so a plain SGD keeps none;
# - `step_counts`: each parameter's step number `t` (Adam's bias correction needs it).
#   It lives apart from `state`, so every value in `state` is an array shaped like its
#   parameter, and code that masks the state (pruning) can treat all of them alike.
#   An empty state means the parameter's history starts over: clearing `state[i]`
#   (as lottery-ticket rewinding does) also restarts its count at 1, just as in
#   PyTorch, whose count lives inside the state.
#
# `step()` walks the parameters, skips those whose `.grad` is `None` (a layer that
# took no part in this forward pass), and calls `update(param, grad, state, t)`,
# the one method a concrete optimizer defines. Then it calls the post-step hooks.
#
# Bad arguments fail at construction, naming the value: an empty parameter list
# (usually a model whose layers were never assigned as attributes), a model passed
# instead of `model.parameters()`, `lr <= 0`, a negative momentum or weight decay,
# betas outside `[0, 1)`.

# %% nbgrader={"grade": false, "grade_id": "optimizer", "solution": true}
#| export
def _hyper(name: str, value: Any, allowed: str, ok: Callable[[float], bool]) -> float:
    """`value` as a float, after checking that it is a number and that `ok(value)` holds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not ok(float(value)):  # NOTE: NaN fails every comparison, so it is rejected too
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


class RemovableHandle:
    """Returned by `register_step_post_hook`; `.remove()` unregisters the hook (twice is harmless)."""

    def __init__(self, hooks: dict[int, Callable], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self._key, None)


class Optimizer:
    """Base class: holds the parameters, their state and the post-step hooks; subclasses define `update`."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3) -> None:
        """Collect and check the parameters.

        Raises:
            TypeError: `params` is not an iterable of Tensors, or `lr` is not a number.
            ValueError: `params` is empty or repeats a Tensor, or `lr <= 0`.
        """
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors, got a single Tensor; pass [tensor]")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"params must be an iterable of Tensors such as model.parameters(), "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError("params is empty: there is nothing to optimize "
                             "(were the layers assigned as attributes of the model?)")
        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                hint = " (pass model.parameters(), not the model)" if hasattr(p, "parameters") else ""
                raise TypeError(f"params[{i}] must be a Tensor, got {type(p).__name__}{hint}")
            if id(p) in seen:
                raise ValueError(f"params[{i}] is the same Tensor as params[{seen[id(p)]}]; "
                                 f"it would be updated twice per step")
            seen[id(p)] = i
        self.params: list[Tensor] = params
        self.lr = _hyper("lr", lr, "> 0", lambda v: v > 0)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in params]
        self.step_counts: list[int] = [0] * len(params)
        self._post_hooks: dict[int, Callable[[Optimizer], None]] = {}
        self._next_hook = 0

    def update(self, param: Tensor, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """Change `param.data` in place from `grad`; `state` is this parameter's memory, `t` its step number (1, 2, ...)."""
        raise NotImplementedError(f"{type(self).__name__} must define update()")

    def step(self) -> None:
        """Update every parameter that has a gradient, then call each post-step hook with the optimizer.

        Task 06.1: skip `grad is None`; count the step (from 1 again when the state is
        empty); call `update`; then the hooks.
        """
        ### BEGIN SOLUTION
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            self.step_counts[i] = 1 if not self.state[i] else self.step_counts[i] + 1
            self.update(param, param.grad, self.state[i], self.step_counts[i])
        for hook in list(self._post_hooks.values()):  # a hook may remove itself
            hook(self)
        ### END SOLUTION

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (`.grad = None`), before the next backward pass."""
        for p in self.params:
            p.grad = None

    def register_step_post_hook(self, fn: Callable[[Optimizer], None]) -> RemovableHandle:
        """Call `fn(optimizer)` after every `step()`, in registration order, until `handle.remove()`."""
        if not callable(fn):
            raise TypeError(f"a step hook must be callable, got {type(fn).__name__}")
        key, self._next_hook = self._next_hook, self._next_hook + 1
        self._post_hooks[key] = fn
        return RemovableHandle(self._post_hooks, key)

# %% [markdown]
# ### Post-step hooks: how pruned weights stay pruned
#
# Pruning (Module 16) sets weights to zero and then fine-tunes the network. A pruned
# weight still receives a gradient, so after one `step()` it would be non-zero again.
# The fix is to re-apply the mask after every update, and the hook is the place:
#
# ```python
# mask = np.abs(layer.weight.data) > threshold          # True = keep
# def keep_pruned(optimizer):
#     layer.weight.data *= mask                         # pruned weights back to exactly 0
#     for buffer in optimizer.state[index].values():    # and their momentum / Adam memory
#         buffer *= mask
# handle = optimizer.register_step_post_hook(keep_pruned)
# ...fine-tune...
# handle.remove()                                       # the constraint ends here
# ```
#
# The optimizer knows nothing about pruning, and the training loop of Module 07
# needs no change: `Masks.attach(optimizer)` in Module 16 registers such a hook.
# Clearing the state too keeps a pruned weight's momentum from building up, so no
# stale update is waiting if that weight is ever allowed back.

# %% nbgrader={"grade": true, "grade_id": "test-optimizer", "locked": true, "points": 2}
class _PlainStep(Optimizer):
    def update(self, param, grad, state, t):
        param.data -= self.lr * grad


def test_unit_optimizer():
    """Task 06.1"""
    w = Tensor(np.array([1.0, -2.0, 3.0], dtype=np.float32), requires_grad=True)
    unused = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    opt = _PlainStep([w, unused], lr=0.5)
    calls = []
    handle = opt.register_step_post_hook(lambda o: calls.append(o))
    opt.register_step_post_hook(lambda o: o.params[0].data.__imul__(np.array([1.0, 0.0, 1.0], dtype=np.float32)))
    w.grad = np.ones(3, dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(w.data, [0.5, 0.0, 2.5])  # updated, then masked by the hook
    np.testing.assert_array_equal(unused.data, [1.0, 1.0])   # no grad: skipped
    assert calls == [opt] and opt.step_counts == [1, 0]
    handle.remove()
    opt.step()
    assert len(calls) == 1
    opt.zero_grad()
    assert w.grad is None
    for bad in (lambda: _PlainStep([], lr=0.1), lambda: _PlainStep([w], lr=-0.1)):
        try:
            bad()
        except ValueError as err:
            assert "empty" in str(err) or "-0.1" in str(err), err
        else:
            raise AssertionError("bad optimizer arguments must raise ValueError")
    print("ok: Optimizer base, hooks")

# %% [markdown]
# ## 2. SGD with momentum and weight decay
#
# PyTorch's rule, for gradient `g` of weight `w`:
#
# 1. weight decay adds the gradient of `(wd / 2) * |w|^2`: `g = g + wd * w`;
# 2. momentum keeps a running direction `b`: on the first step `b = g`, then
#    `b = momentum * b + g`, and the update uses `b` instead of `g`;
# 3. `w = w - lr * b`.
#
# Momentum averages out the zig-zag of a narrow valley and keeps moving along its
# floor. Under a constant gradient the buffer grows towards `g / (1 - momentum)`, so
# with `momentum = 0.9` the steps approach 10 times plain SGD's (the tests follow 50
# such steps). The update writes into `param.data` in place, so every reference to the
# weight (a layer, a pruning mask, the optimizer itself) sees it.

# %% nbgrader={"grade": false, "grade_id": "sgd", "solution": true}
#| export
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and (L2) weight decay, as in PyTorch."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        """Check the hyper-parameters.

        Args:
            params: the Tensors to update, e.g. `model.parameters()`.
            lr: learning rate, > 0.
            momentum: >= 0; 0 means plain SGD.
            weight_decay: L2 penalty factor, >= 0.

        Raises:
            ValueError: a hyper-parameter is out of range (the message names it and its value).
        """
        super().__init__(params, lr)
        self.momentum = _hyper("momentum", momentum, ">= 0", lambda v: v >= 0)
        self.weight_decay = _hyper("weight_decay", weight_decay, ">= 0", lambda v: v >= 0)

    def update(self, param: Tensor, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """w -= lr * b, with b the momentum buffer (or the gradient itself when momentum is 0).

        Task 06.2: weight decay, then momentum (the first buffer is a copy of g), then the step.
        """
        ### BEGIN SOLUTION
        if self.weight_decay:
            grad = grad + self.weight_decay * param.data
        if self.momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buffer *= self.momentum
                buffer += grad
            grad = buffer
        param.data -= self.lr * grad
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-sgd", "locked": true, "points": 2}
def test_unit_sgd():
    """Task 06.2"""
    w = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.5)
    g = np.array([1.0, -1.0], dtype=np.float32)
    w.grad = g.copy()
    opt.step()                       # b1 = g + 0.5 w0
    b1 = g + 0.5 * np.array([1.0, 2.0])
    w1 = np.array([1.0, 2.0]) - 0.1 * b1
    np.testing.assert_allclose(w.data, w1, rtol=1e-6)
    opt.step()                       # b2 = 0.9 b1 + g + 0.5 w1
    np.testing.assert_allclose(w.data, w1 - 0.1 * (0.9 * b1 + g + 0.5 * w1), rtol=1e-6)
    assert set(opt.state[0]) == {"momentum_buffer"} and opt.state[0]["momentum_buffer"].shape == (2,)
    assert SGD([w], lr=0.1).state == [{}] and not SGD([w], lr=0.1).state[0]
    print("ok: SGD")

# %% [markdown]
# ## 3. Adam and AdamW
#
# Adam keeps two running averages per weight, of the gradient (`m`, the direction)
# and of its square (`v`, the scale), and steps by their ratio, so every weight moves
# by about `lr` whatever the size of its gradient:
#
# ```
# m = beta1 * m + (1 - beta1) * g
# v = beta2 * v + (1 - beta2) * g^2
# w = w - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
# ```
#
# `m` and `v` start at zero, so during the first steps they are biased towards
# zero; dividing by `1 - beta^t` (bias correction) removes that bias. At `t = 1` the
# step is exactly `lr * g / (|g| + eps)`: each weight moves by `lr`.
#
# The two ways of adding weight decay are not the same:
#
# - **Adam** (`weight_decay > 0`) adds `wd * w` to the gradient, an L2 penalty. The
#   penalty then passes through the `1 / sqrt(v)` scaling, so weights with large
#   gradients are barely decayed.
# - **AdamW** (Loshchilov and Hutter) *decouples* the decay from the gradient:
#   `w = w - lr * wd * w` first, then the Adam step on the plain gradient. Every
#   weight shrinks at the same rate. Its default `weight_decay` is 0.01.
#
# Both keep `m` and `v` as `state["exp_avg"]` and `state["exp_avg_sq"]`, PyTorch's
# names, and their hyper-parameters are checked: betas in `[0, 1)`, `eps >= 0`.

# %% nbgrader={"grade": false, "grade_id": "adam", "solution": true}
#| export
class Adam(Optimizer):
    """Adam with bias correction and optional L2 weight decay, PyTorch's rule."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        """Check the hyper-parameters.

        Args:
            params: the Tensors to update, e.g. `model.parameters()`.
            lr: learning rate, > 0.
            betas: decay rates of the two moment averages, each in [0, 1).
            eps: added to the denominator, >= 0.
            weight_decay: >= 0; L2 penalty for Adam, decoupled decay for AdamW.

        Raises:
            ValueError: a hyper-parameter is out of range (the message names it and its value).
        """
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_hyper(f"betas[{i}]", b, "in [0, 1)", lambda v: 0 <= v < 1) for i, b in enumerate(betas))
        self.eps = _hyper("eps", eps, ">= 0", lambda v: v >= 0)
        self.weight_decay = _hyper("weight_decay", weight_decay, ">= 0", lambda v: v >= 0)

    def _adam_step(self, param: Tensor, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """Update the two moments in place and move `param` by the bias-corrected ratio.

        Task 06.3: create zero moments on the first step, then the three lines of Adam.
        """
        ### BEGIN SOLUTION
        beta1, beta2 = self.betas
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param.data)
            state["exp_avg_sq"] = np.zeros_like(param.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        param.data -= (self.lr / (1 - beta1**t)) * (m / denom)
        ### END SOLUTION

    def update(self, param: Tensor, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """Adam's step on the gradient plus the L2 term `weight_decay * w`."""
        if self.weight_decay:
            grad = grad + self.weight_decay * param.data
        self._adam_step(param, grad, state, t)


class AdamW(Adam):
    """Adam with decoupled weight decay (w -= lr * wd * w before the step), PyTorch's rule."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def update(self, param: Tensor, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """Shrink the weight by `lr * weight_decay`, then take Adam's step on the plain gradient.

        Task 06.4: the decay multiplies `param.data`; it never touches the gradient.
        """
        ### BEGIN SOLUTION
        if self.weight_decay:
            param.data *= 1 - self.lr * self.weight_decay
        self._adam_step(param, grad, state, t)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-adam", "locked": true, "points": 2}
def test_unit_adam():
    """Task 06.3"""
    w0 = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    w = Tensor(w0.copy(), requires_grad=True)
    opt = Adam([w], lr=0.01)
    w.grad = np.array([3.0, -0.001, 40.0], dtype=np.float32)
    opt.step()  # the first step moves every weight by about lr, against its gradient
    np.testing.assert_allclose(w.data, w0 - 0.01 * np.sign(w.grad), rtol=1e-4)
    m, v = opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]
    np.testing.assert_allclose(m, 0.1 * w.grad, rtol=1e-6)
    np.testing.assert_allclose(v, 0.001 * w.grad**2, rtol=1e-5)
    print("ok: Adam")

# %% nbgrader={"grade": true, "grade_id": "test-adamw", "locked": true, "points": 2}
def test_unit_adamw():
    """Task 06.4"""
    w0 = np.array([1.0, -2.0], dtype=np.float32)
    decoupled, coupled = Tensor(w0.copy(), requires_grad=True), Tensor(w0.copy(), requires_grad=True)
    opt_w, opt_l2 = AdamW([decoupled], lr=0.1, weight_decay=0.5), Adam([coupled], lr=0.1, weight_decay=0.5)
    for t in (decoupled, coupled):
        t.grad = np.array([0.0, 0.0], dtype=np.float32)
    opt_w.step()
    opt_l2.step()
    # zero gradient: AdamW only shrinks, by lr * wd = 5%; Adam's L2 term becomes a full Adam step
    np.testing.assert_allclose(decoupled.data, w0 * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(coupled.data, w0 - 0.1 * np.sign(w0), rtol=1e-5)
    print("ok: AdamW")

# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_optimizer()
    test_unit_sgd()
    test_unit_adam()
    test_unit_adamw()

# %%
if __name__ == "__main__":
    test_module()
    print("Module 06: all inline tests passed")
