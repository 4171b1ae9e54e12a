"""Small random models for Module 18's tests."""
from __future__ import annotations

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import manual_seed
from models import mlp as build_mlp


def make_mlp(sizes=(8, 16, 12, 4), seed=0) -> Sequential:
    return build_mlp(sizes, seed)


def make_cnn(seed=0, channels=(4, 6)) -> Sequential:
    """Conv-BN-ReLU-Pool twice, Flatten, Linear, on 1x8x8 inputs."""
    manual_seed(seed)
    c1, c2 = channels
    return Sequential(
        Conv2d(1, c1, 3, padding=1), BatchNorm2d(c1), ReLU(), MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1), BatchNorm2d(c2), ReLU(), MaxPool2d(2),
        Flatten(), Linear(c2 * 4, 10),
    )
