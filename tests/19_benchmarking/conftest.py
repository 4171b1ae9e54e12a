"""Fixtures for Module 19: small models, a fake clock, and the trained digits MLP with its variants."""
from __future__ import annotations

import pytest

from tinytorch.core.autograd import is_grad_enabled
from tinytorch.core.layers import Module, Sequential
from models import mlp as build_mlp


def make_mlp(sizes=(64, 32, 32, 10), seed=0) -> Sequential:
    return build_mlp(sizes, seed)


class FakeClock:
    """Time that moves only when a `Costly` model runs: exact latencies, no waiting."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Costly(Module):
    """Returns its input; each call advances the clock by the next of `costs` (the last one repeats).

    Every call is logged as (name, training, grad enabled, batch rows).
    """

    def __init__(self, name, clock, costs, log):
        super().__init__()
        self.name, self.clock, self.log = name, clock, log
        self.costs = list(costs) if isinstance(costs, (list, tuple)) else [costs]
        self.calls = 0

    def forward(self, x):
        self.log.append((self.name, self.training, is_grad_enabled(), x.shape[0]))
        self.clock.now += self.costs[min(self.calls, len(self.costs) - 1)]
        self.calls += 1
        return x


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(scope="session")
def digits():
    from tinytorch.datasets import load_digits

    return load_digits(flat=True)


@pytest.fixture(scope="session")
def wide_digits():
    """The digits MLP 64-512-512-10 after one epoch of Module 09's recipe (Adam, lr 3e-3): model, train loader, test accuracy."""
    from tinytorch.recipes import DigitsRecipe

    run = DigitsRecipe(epochs=1, lr=3e-3, seed=0).fit(make_mlp((64, 512, 512, 10), seed=0))
    return run.model, run.train, run.accuracy


@pytest.fixture(scope="session")
def variants(wide_digits):
    """`standard_variants` of the wide digits MLP, one fine-tuning epoch each."""
    from tinytorch.benchmarking import standard_variants
    from tinytorch.core.losses import CrossEntropyLoss

    model, train, _ = wide_digits
    return standard_variants(model, train, CrossEntropyLoss(), epochs=1, lr=1e-3)
