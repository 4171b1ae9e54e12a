"""Fixtures for Module 16: small random models and one trained digits MLP per session."""
from __future__ import annotations

import pytest

from tinytorch.core.layers import Sequential
from models import cnn as build_cnn
from models import mlp as build_mlp


def make_mlp(sizes=(8, 16, 12, 4), seed=0) -> Sequential:
    return build_mlp(sizes, seed)


def make_cnn(seed=0, channels=(4, 6)) -> Sequential:
    return build_cnn(seed, channels)


@pytest.fixture
def mlp():
    return make_mlp()


@pytest.fixture
def cnn():
    return make_cnn()


@pytest.fixture(scope="session")
def digits():
    from tinytorch.datasets import load_digits

    return load_digits(flat=True)


def train_digits_mlp(epochs=30, seed=0):
    """The digits MLP (64-128-64-10) trained by Module 09's recipe (Adam, lr 3e-3); returns (model, test accuracy)."""
    from tinytorch.recipes import DigitsRecipe, digits_mlp

    run = DigitsRecipe(epochs=epochs, lr=3e-3, seed=seed).fit(digits_mlp(seed=seed))
    return run.model, run.accuracy


@pytest.fixture(scope="session")
def trained_mlp():
    return train_digits_mlp()
