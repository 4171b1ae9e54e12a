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


def train_digits_mlp(digits, epochs=30, seed=0):
    """The digits MLP (64-128-64-10), trained with Adam; returns (model, test accuracy)."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate, fit
    from tinytorch.data.loader import DataLoader, TensorDataset

    x_train, y_train, x_test, y_test = digits
    model = make_mlp((64, 128, 64, 10), seed=seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=seed)
    fit(model, Adam(model.parameters(), lr=3e-3), CrossEntropyLoss(), loader, epochs, progress=False)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=360)
    return model, evaluate(model, test_loader)


@pytest.fixture(scope="session")
def trained_mlp(digits):
    return train_digits_mlp(digits)
