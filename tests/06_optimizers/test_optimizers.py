"""Module 06, tasks 06.1-06.4: the Optimizer base (state, skipping, post-step hooks),
SGD, Adam and AdamW against PyTorch's trajectories over 20 steps, a small network
trained side by side with PyTorch, and errors that name the bad value."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.layers import Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam, AdamW, Optimizer
from tinytorch.core.tensor import Tensor, manual_seed

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def make_params(seed: int = 0) -> list[Tensor]:
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in SHAPES]


def gradient(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """A smooth, parameter-dependent gradient (of sum(c w^2 / 2 - cos(3w) / 3 + w / 2)), in float32."""
    return (c * w + np.sin(3 * w) + 0.5).astype(np.float32)


# --- 06.2-06.4 against PyTorch ------------------------------------------------------------------
CONFIGS = [
    ("06.2", SGD, dict(lr=0.05)),
    ("06.2", SGD, dict(lr=0.05, momentum=0.9)),
    ("06.2", SGD, dict(lr=0.03, momentum=0.5, weight_decay=0.1)),
    ("06.3", Adam, dict(lr=0.01)),
    ("06.3", Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("06.4", AdamW, dict(lr=0.01)),
    ("06.4", AdamW, dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3)),
]


@pytest.mark.parametrize("cls, kwargs", [pytest.param(c, k, marks=pytest.mark.task(t), id=f"{c.__name__}-{k}")
                                         for t, c, k in CONFIGS])
def test_trajectory_matches_torch_for_20_steps(cls, kwargs):
    torch = pytest.importorskip("torch")
    ours = make_params()
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = cls(ours, **kwargs)
    opt_t = getattr(torch.optim, cls.__name__)(theirs, **kwargs)
    coefficients = [np.random.default_rng(i + 10).uniform(0.5, 2.0, s).astype(np.float32) for i, s in enumerate(SHAPES)]
    for step in range(20):
        for i, (p, pt, c) in enumerate(zip(ours, theirs, coefficients)):
            skip = i == 2 and step % 3 == 0  # this parameter has no gradient on some steps
            p.grad = None if skip else gradient(p.data, c)
            pt.grad = None if skip else torch.from_numpy(gradient(pt.detach().numpy(), c))
        opt.step()
        opt_t.step()
        for i, (p, pt) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(p.data, pt.detach().numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{cls.__name__} parameter {i} after step {step + 1}")
    for i, pt in enumerate(theirs):  # the state holds the same arrays under the same names
        for key, value in opt_t.state[pt].items():
            if key != "step":
                np.testing.assert_allclose(opt.state[i][key], value.numpy(), rtol=1e-5, atol=1e-7, err_msg=key)
    if any(opt.state):  # a stateless SGD restarts its count every step; it never reads it
        assert opt.step_counts == [20, 20, 13]


@pytest.mark.parametrize("cls", [pytest.param(SGD, marks=pytest.mark.task("06.2")),
                                 pytest.param(Adam, marks=pytest.mark.task("06.3"))])
def test_training_a_network_matches_torch(cls):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    manual_seed(0)
    model = Sequential(Linear(8, 16), ReLU(), Linear(16, 4))
    theirs = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    kwargs = dict(lr=0.05, momentum=0.9) if cls is SGD else dict(lr=0.01)
    opt, opt_t = cls(model.parameters(), **kwargs), getattr(torch.optim, cls.__name__)(theirs.parameters(), **kwargs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 8)).astype(np.float32)
    y = rng.integers(0, 4, 32)
    losses, losses_t = [], []
    for _ in range(15):
        opt.zero_grad()
        loss = CrossEntropyLoss()(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        opt_t.zero_grad()
        loss_t = nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        loss_t.backward()
        opt_t.step()
        losses.append(loss.item())
        losses_t.append(loss_t.item())
    np.testing.assert_allclose(losses, losses_t, rtol=1e-5)
    assert losses[-1] < losses[0]


# --- 06.1 the base class ------------------------------------------------------------------------
class Plain(Optimizer):
    def update(self, param, grad, state, t):
        state.setdefault("seen", np.zeros_like(param.data))
        param.data -= self.lr * grad


@pytest.mark.task("06.1")
def test_step_skips_parameters_without_gradient():
    a, b = make_params()[:2]
    before = b.data.copy()
    opt = Plain([a, b], lr=0.1)
    a.grad = np.ones_like(a.data)
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    assert opt.state[1] == {} and "seen" in opt.state[0] and opt.step_counts == [1, 0]


@pytest.mark.task("06.1")
def test_state_is_a_list_aligned_with_params_and_filled_lazily():
    params = make_params()
    for opt, keys in [(SGD(params, lr=0.1), set()), (SGD(params, lr=0.1, momentum=0.9), {"momentum_buffer"}),
                      (Adam(params), {"exp_avg", "exp_avg_sq"}), (AdamW(params), {"exp_avg", "exp_avg_sq"})]:
        assert opt.state == [{}, {}, {}] and opt.params == params
        for p in params:
            p.grad = np.ones_like(p.data)
        opt.step()
        for p, state in zip(params, opt.state):
            assert set(state) == keys, type(opt).__name__
            assert all(v.shape == p.shape and v.dtype == p.data.dtype for v in state.values())


@pytest.mark.task("06.1")
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_clearing_the_state_restarts_like_a_new_optimizer(cls):
    params, fresh = make_params(), make_params()
    opt = cls(params, lr=0.01)
    coefficients = [np.full(s, 1.5, dtype=np.float32) for s in SHAPES]
    for step in range(8):
        if step == 4:  # rewinding: same weights, history forgotten
            for p, q in zip(params, fresh):
                q.data[...] = p.data
            for state in opt.state:
                state.clear()
            restarted = cls(fresh, lr=0.01)
        for p, c in zip(params, coefficients):
            p.grad = gradient(p.data, c)
        opt.step()
        if step >= 4:
            for q, c in zip(fresh, coefficients):
                q.grad = gradient(q.data, c)
            restarted.step()
    assert opt.step_counts == [4, 4, 4]
    for p, q in zip(params, fresh):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.task("06.1")
def test_update_is_in_place_and_lr_can_change_between_steps():
    (w,) = make_params()[:1]
    data = w.data
    opt = SGD([w], lr=0.1)
    w.grad = np.ones_like(w.data)
    opt.step()
    opt.lr = 1.0
    opt.step()
    assert w.data is data  # references held elsewhere (layers, masks) see the update
    np.testing.assert_allclose(w.data, make_params()[0].data - 1.1, rtol=1e-6)


def test_zero_grad_clears_every_gradient():
    params = make_params()
    for p in params:
        p.grad = np.ones_like(p.data)
    SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.task("06.1")
def test_post_step_hooks_run_after_every_step_in_order_until_removed():
    params = make_params()
    opt = Adam(params)
    calls = []
    first = opt.register_step_post_hook(lambda o: calls.append(("first", o, o.step_counts[0])))
    opt.register_step_post_hook(lambda o: calls.append(("second", o, o.step_counts[0])))
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    opt.step()
    assert calls == [("first", opt, 1), ("second", opt, 1), ("first", opt, 2), ("second", opt, 2)]
    first.remove()
    first.remove()  # harmless
    opt.step()
    assert calls[-1] == ("second", opt, 3) and len(calls) == 5


@pytest.mark.task("06.1")
def test_a_hook_may_remove_itself_during_step():
    opt = SGD(make_params(), lr=0.1)
    calls = []

    def once(o):
        calls.append(1)
        handle.remove()

    handle = opt.register_step_post_hook(once)
    opt.step()
    opt.step()
    assert calls == [1]
    with pytest.raises(TypeError, match="callable, got int"):
        opt.register_step_post_hook(3)


@pytest.mark.task("06.1")
@pytest.mark.parametrize("cls, kwargs", [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
                                         (Adam, dict(lr=0.01)), (AdamW, dict(lr=0.01, weight_decay=0.1))])
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.1, 0.9))
def test_masking_hook_keeps_pruned_weights_exactly_zero(cls, kwargs, seed, density):
    """The mechanism Module 16 uses: re-apply a mask to weights and state after each step."""
    rng = np.random.default_rng(seed)
    params = make_params(seed % 1000)
    masks = [rng.random(p.shape) < density for p in params]
    masks[0].flat[0] = True  # at least one weight is kept
    kept_start = params[0].data.flat[0]
    opt = cls(params, **kwargs)

    def keep_pruned(o):
        for p, mask, state in zip(o.params, masks, o.state):
            p.data *= mask
            for buffer in state.values():
                buffer *= mask

    opt.register_step_post_hook(keep_pruned)
    for _ in range(5):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
        for p, mask, state in zip(params, masks, opt.state):
            assert (p.data[~mask] == 0).all()
            assert all((v[~mask] == 0).all() for v in state.values())
    assert params[0].data.flat[0] != kept_start  # the kept weights still train


# --- errors --------------------------------------------------------------------------------------
def test_bad_parameter_lists_are_rejected():
    w = make_params()[0]
    with pytest.raises(ValueError, match="params is empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] must be a Tensor, got ndarray"):
        SGD([w, np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="got a single Tensor"):
        SGD(w, lr=0.1)
    with pytest.raises(TypeError, match=r"pass model.parameters\(\), not the model"):
        SGD(Sequential(Linear(2, 2)), lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors such as model.parameters"):
        Adam(Linear(2, 2))
    with pytest.raises(ValueError, match=r"params\[1\] is the same Tensor as params\[0\]"):
        Adam([w, w])


@pytest.mark.parametrize("make, error, named", [
    (lambda p: SGD(p, lr=0.0), ValueError, "lr must be > 0, got 0.0"),
    (lambda p: SGD(p, lr=-0.1), ValueError, "lr must be > 0, got -0.1"),
    (lambda p: Adam(p, lr=float("nan")), ValueError, "lr must be > 0, got nan"),
    (lambda p: SGD(p, lr="0.1"), TypeError, "lr must be a number, got '0.1'"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), ValueError, "momentum must be >= 0, got -0.5"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0, got -1"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in \[0, 1\), got -0.1"),
    (lambda p: Adam(p, betas=(0.9,)), ValueError, r"betas must be a pair \(beta1, beta2\), got \(0.9,\)"),
    (lambda p: Adam(p, eps=-1e-8), ValueError, "eps must be >= 0, got -1e-08"),
    (lambda p: AdamW(p, weight_decay=-0.01), ValueError, "weight_decay must be >= 0, got -0.01"),
])
def test_bad_hyper_parameters_name_the_value(make, error, named):
    with pytest.raises(error, match=named):
        make(make_params())


# --- rules in isolation ---------------------------------------------------------------------------
@pytest.mark.task("06.3")
def test_adam_first_step_moves_each_weight_by_lr():
    params = make_params()
    before = [p.data.copy() for p in params]
    for p in params:
        p.grad = np.random.default_rng(0).standard_normal(p.shape).astype(np.float32) * 100
    Adam(params, lr=0.01).step()
    for p, b in zip(params, before):
        np.testing.assert_allclose(b - p.data, 0.01 * np.sign(p.grad), rtol=1e-4)


@pytest.mark.task("06.4")
def test_adamw_decay_is_decoupled_from_the_adaptive_step():
    # With a zero gradient, AdamW only shrinks the weights, by (1 - lr * wd) per step;
    # Adam's L2 term instead becomes the gradient, which Adam normalises to steps of ~lr.
    def run(cls):
        start = np.array([1.0, -2.0, 0.8, -0.6], dtype=np.float32)  # far from 0: the L2 gradient barely changes
        w = Tensor(start.copy(), requires_grad=True)
        opt = cls([w], lr=0.01, weight_decay=0.5)
        for _ in range(3):
            w.grad = np.zeros_like(w.data)
            opt.step()
        return start, w.data

    start, decoupled = run(AdamW)
    np.testing.assert_allclose(decoupled, start * (1 - 0.01 * 0.5) ** 3, rtol=1e-6)
    start, coupled = run(Adam)
    np.testing.assert_allclose(coupled, start - 3 * 0.01 * np.sign(start), rtol=1e-3, atol=1e-5)


@pytest.mark.task("06.2")
def test_sgd_momentum_follows_a_constant_gradient_faster():
    def distance(momentum):
        (w,) = make_params()[:1]
        start = w.data.copy()
        opt = SGD([w], lr=0.01, momentum=momentum)
        for _ in range(50):
            w.grad = np.ones_like(w.data)
            opt.step()
        return float((start - w.data).mean())

    assert distance(0.0) == pytest.approx(0.5, rel=1e-5)
    # sum over 50 steps of (1 - 0.9^k) / (1 - 0.9): the geometric series momentum builds
    expected = 0.01 * sum((1 - 0.9**k) / 0.1 for k in range(1, 51))
    assert distance(0.9) == pytest.approx(expected, rel=1e-4)
    assert math.isclose(expected / 0.5, 8.1, rel_tol=0.02)
