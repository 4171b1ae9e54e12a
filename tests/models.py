"""Small models that several modules' test suites build."""
from __future__ import annotations

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import manual_seed


def mlp(sizes: tuple[int, ...], seed: int = 0) -> Sequential:
    """Linear layers of the given widths with a ReLU between each two, seeded."""
    manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def cnn(seed: int = 0, channels: tuple[int, int] = (4, 6)) -> Sequential:
    """Conv-BN-ReLU-Pool twice, Flatten, Linear, on 1x8x8 inputs, seeded."""
    manual_seed(seed)
    c1, c2 = channels
    return Sequential(
        Conv2d(1, c1, 3, padding=1), BatchNorm2d(c1), ReLU(), MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1), BatchNorm2d(c2), ReLU(), MaxPool2d(2),
        Flatten(), Linear(c2 * 4, 10),
    )
