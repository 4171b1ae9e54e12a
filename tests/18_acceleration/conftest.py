"""Small random models for Module 18's tests."""
from __future__ import annotations

from tinytorch.core.layers import Sequential
from models import cnn as build_cnn
from models import mlp as build_mlp


def make_mlp(sizes=(8, 16, 12, 4), seed=0) -> Sequential:
    return build_mlp(sizes, seed)


def make_cnn(seed=0, channels=(4, 6)) -> Sequential:
    return build_cnn(seed, channels)
