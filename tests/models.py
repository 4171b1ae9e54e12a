"""Small models that several modules' test suites build: Module 09's builders (`tinytorch.recipes`)."""
from __future__ import annotations

from tinytorch.core.layers import Sequential
from tinytorch.recipes import digits_cnn, digits_mlp


def mlp(sizes: tuple[int, ...], seed: int = 0) -> Sequential:
    """Linear layers of the given widths with a ReLU between each two, seeded."""
    return digits_mlp(sizes, seed)


def cnn(seed: int = 0, channels: tuple[int, int] = (4, 6)) -> Sequential:
    """Conv-BN-ReLU-Pool twice, Flatten, Linear, on 1x8x8 inputs, seeded."""
    return digits_cnn(channels, batchnorm=True, seed=seed)
