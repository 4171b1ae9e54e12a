"""Small models that several modules' test suites build."""
from __future__ import annotations

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
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
