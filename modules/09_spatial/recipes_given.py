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
# # Given code: the digits models and their training recipe
#
# From here on the course measures everything on two small networks that learn the
# bundled digits (Module 08's `load_digits`): an MLP on the 64 pixels as a row, and a CNN
# on the 8x8 image. Profiling, quantization, pruning, acceleration, benchmarking and
# deployment all start from them, and so do the demo and the benchmarks. So that a figure
# in one page can be compared with a figure in another, they are built and trained here,
# once (`tinytorch.recipes`). This file holds no task: read it to see what every later
# experiment means by "the digits MLP, trained".
#
# - `digits_mlp(sizes)`: Linear layers of these widths with a ReLU between each two
#   (64-128-64-10 by default; 64-300-100-10 is LeNet-300-100's shape on the digits).
# - `digits_cnn(channels)`: per entry a 3x3 convolution (padding 1), an optional
#   BatchNorm, ReLU and a 2x2 max-pool, then Flatten and one Linear to the 10 classes.
# - `digits_loaders(seed)`: the shuffled training batches and the 360 test images in one
#   batch, as rows or as images.
# - `DigitsRecipe(...)`: how a network is trained (optimizer, learning rate, epochs,
#   batch size, the seed of the batch order), frozen, so a page can print it and a test
#   can compare it; `recipe.fit(model)` trains and returns the model with its test accuracy.
# - The papers' networks on the bundled MNIST sample (`load_mnist`, 28x28): `lenet_300_100`
#   (784-300-100-10, 266,610 parameters) and `lenet5` (431,080 parameters, as Deep
#   Compression counts it), `mnist_loaders(seed)`, and `MnistRecipe`, the digits recipe
#   with MNIST's data and defaults.
#
# Reproducibility is the point: a builder draws its weights right after
# `manual_seed(seed)`, the batches' order depends only on the loader's seed, and the same
# recipe on the same model gives the same weights, bit for bit.

# %%
#| default_exp recipes

# %%
#| export
from __future__ import annotations
"""The digits MLP and CNN, the papers' LeNets for MNIST, their data loaders and one training recipe every later module uses (given code)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tinytorch.core.activations import ReLU
from tinytorch.core.checks import ArgumentTypeError, check_instance, check_int, check_number
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import manual_seed
from tinytorch.core.training import evaluate, fit
from tinytorch.data.loader import DataLoader, TensorDataset
from tinytorch.datasets import load_digits, load_mnist

DIGITS_MLP = (64, 128, 64, 10)  # the course's digits MLP: 17,226 parameters
DIGITS_CNN = (8, 16)  # filters of the digits CNN's two convolutions: 1,898 parameters
LENET_300_100 = (784, 300, 100, 10)  # LeCun et al. 1998; the lottery ticket's and Deep Compression's MLP
OPTIMIZERS = ("adam", "sgd")

# %% [markdown]
# ### The two networks
#
# `seed=None` draws the weights from wherever TinyTorch's generator stands, so two
# networks built one after the other after a single `manual_seed` differ (Module 20
# builds its MLP and CNN that way).

# %%
#| export
def _seed(seed: int | None) -> None:
    if seed is not None:
        manual_seed(check_int("seed", seed, minimum=0))


def _widths(name: str, widths: Any, minimum: int) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ArgumentTypeError(f"{name} must be a sequence of ints >= 1, got {widths!r}")
    if len(widths) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} widths, got {widths!r}")
    return tuple(check_int(f"{name}[{i}]", w, minimum=1) for i, w in enumerate(widths))


def digits_mlp(sizes: Sequence[int] = DIGITS_MLP, seed: int | None = 0) -> Sequential:
    """An MLP: a Linear between each two widths of `sizes`, a ReLU between each two Linears.

    Args:
        sizes: the widths, input first: 64 pixels in and 10 classes out for the digits
            (any widths build, so tests can use tiny ones).
        seed: `manual_seed(seed)` before the weights are drawn; None draws them from
            the generator as it stands.

    Raises:
        ValueError: fewer than two widths, a width below 1, or a negative seed.
    """
    sizes = _widths("sizes", sizes, 2)
    _seed(seed)
    layers: list[Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [Linear(a, b)] + ([ReLU()] if i < len(sizes) - 2 else [])
    return Sequential(*layers)


def digits_cnn(channels: Sequence[int] = DIGITS_CNN, batchnorm: bool = False, seed: int | None = 0) -> Sequential:
    """A CNN for 1x8x8 images: per entry of `channels` Conv2d(3x3, padding 1), [BatchNorm2d], ReLU,
    MaxPool2d(2); then Flatten and Linear(channels[-1] * side**2, 10), side = 8 halved per block.

    Args:
        channels: filters of each convolution, one to three of them (8 -> 4 -> 2 -> 1 pixels).
        batchnorm: a BatchNorm2d after each convolution.
        seed: as for `digits_mlp`.

    Raises:
        ValueError: no channel count or more than three, a count below 1, or a negative seed.
    """
    channels = _widths("channels", channels, 1)
    if len(channels) > 3:
        raise ValueError(f"channels must hold 1 to 3 counts (each block halves the 8x8 image), got {channels!r}")
    check_instance("batchnorm", batchnorm, bool, "True or False")
    _seed(seed)
    layers: list[Module] = []
    for c_in, c_out in zip((1,) + channels[:-1], channels):
        layers += [Conv2d(c_in, c_out, 3, padding=1)] + ([BatchNorm2d(c_out)] if batchnorm else [])
        layers += [ReLU(), MaxPool2d(2)]
    side = 8 >> len(channels)
    return Sequential(*layers, Flatten(), Linear(channels[-1] * side * side, 10))

# %% [markdown]
# ### The data
#
# The training batches are shuffled by the loader's own generator, seeded with `seed`:
# two loaders made with the same seed give the same batches in the same order, whatever
# else has drawn random numbers in between. `labels` keeps a random subset of the
# training images (the same subset for a given seed), for experiments with few labels.

# %%
#| export
def digits_loaders(seed: int = 0, labels: int | None = None, *, flat: bool = True,
                   batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """(train, test) loaders of the digits: shuffled training batches, the 360 test images in one batch.

    Args:
        seed: seeds the order of the training batches (and the `labels` subset).
        labels: keep only this many training images, drawn at random with `seed`.
        flat: rows of 64 pixels (for an MLP), else 1x8x8 images (for a CNN).
        batch_size: training images per batch.

    Raises:
        ValueError: a negative seed, `labels` outside [1, 1437], or `batch_size` below 1.
    """
    return _loaders(load_digits, seed, labels, flat, batch_size)


def _loaders(load, seed: int, labels: int | None, flat: bool, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches in `seed`'s order and the whole test set in one batch, from `load(flat)`."""
    seed = check_int("seed", seed, minimum=0)
    check_instance("flat", flat, bool, "True or False")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    x, y, x_test, y_test = load(flat=flat)
    if labels is not None:
        labels = check_int("labels", labels, minimum=1, maximum=len(y))
        keep = np.random.default_rng(seed).permutation(len(y))[:labels]
        x, y = x[keep], y[keep]
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    return train, DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test))


def reads_images(model: Module) -> bool:
    """True when `model` holds a convolution, so it reads images (1x8x8, 1x28x28) rather than rows of pixels."""
    return any(isinstance(m, Conv2d) for m in model.modules())

# %% [markdown]
# ### The recipe
#
# A recipe is the whole of how a network is trained: optimizer, learning rate (and the
# later phases at smaller rates, if any), epochs, batch size, and the seed of the batch
# order. The weights' seed belongs to the builder, not to the recipe, so one recipe can
# train many networks. `fit` runs Module 07's `fit` with cross-entropy, phase after
# phase with the same optimizer (its state carries over, only `lr` changes), and
# measures the test accuracy once at the end. `masks` (Module 16's `Masks`, or anything
# with `attach(optimizer) -> handle`) keeps pruned weights at zero while it trains.

# %%
#| export
class Trained(NamedTuple):
    """What `DigitsRecipe.fit` (and `MnistRecipe.fit`) returns: the model (trained in place), its test accuracy, the
    loaders it used and `fit`'s history (one row per epoch, every phase)."""

    model: Module
    accuracy: float
    train: Any
    test: Any
    history: list


@dataclass(frozen=True)
class DigitsRecipe:
    """How a digits network is trained: `optimizer` ("adam" or "sgd") at `lr` for `epochs`, then
    each `(lr, epochs)` of `then`; batches of `batch_size` in the order `seed` gives; cross-entropy.

    Raises (on construction):
        ValueError: a count below 1, a rate not > 0, momentum outside [0, 1) or given to Adam,
            a negative weight decay or seed, or an unknown optimizer.
    """

    epochs: int = 25
    lr: float = 3e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 0
    then: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_number("lr", self.lr, 0.0, low_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_number("momentum", self.momentum, 0.0, 1.0, high_open=True)
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum applies to optimizer='sgd' only, got momentum={self.momentum!r} "
                             f"with optimizer={self.optimizer!r}")
        check_number("weight_decay", self.weight_decay, 0.0)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("seed", self.seed, minimum=0)
        if isinstance(self.then, (str, bytes)) or not isinstance(self.then, Sequence):
            raise ArgumentTypeError(f"then must be a sequence of (lr, epochs) pairs, got {self.then!r}")
        for i, phase in enumerate(self.then):
            if not isinstance(phase, Sequence) or len(phase) != 2:
                raise ValueError(f"then[{i}] must be an (lr, epochs) pair, got {phase!r}")
            check_number(f"then[{i}] lr", phase[0], 0.0, low_open=True)
            check_int(f"then[{i}] epochs", phase[1], minimum=1)
        object.__setattr__(self, "then", tuple(tuple(phase) for phase in self.then))

    @property
    def phases(self) -> tuple[tuple[float, int], ...]:
        """Every `(lr, epochs)` phase, the first one included."""
        return ((self.lr, self.epochs),) + self.then

    def make_optimizer(self, model: Module) -> SGD | Adam:
        """A fresh optimizer of this recipe over `model`'s parameters, at the first phase's rate."""
        if self.optimizer == "sgd":
            return SGD(model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def loaders(self, flat: bool = True, labels: int | None = None) -> tuple[DataLoader, DataLoader]:
        """`digits_loaders` with this recipe's seed and batch size."""
        return digits_loaders(self.seed, labels, flat=flat, batch_size=self.batch_size)

    def fit(self, model: Module, train: Any = None, test: Any = None, masks: Any = None,
            progress: bool | None = False) -> Trained:
        """Train `model` in place with this recipe; return it with its test accuracy.

        Args:
            model: a network built by `digits_mlp`, `digits_cnn` or alike.
            train, test: loaders to use instead of `self.loaders(...)` (rows or images, as
                `reads_images(model)` says).
            masks: keep-masks held during training (anything with `attach(optimizer) -> handle`).
            progress: Module 07's progress bar (`None`: on a terminal).

        Returns:
            `Trained(model, accuracy, train, test, history)`.

        Raises:
            ArgumentTypeError: `model` is not a Module, or `masks` cannot be attached.
        """
        check_instance("model", model, Module, "a tinytorch Module")
        if masks is not None and not callable(getattr(masks, "attach", None)):
            raise ArgumentTypeError(f"masks must have attach(optimizer) (a Masks) or be None, "
                                    f"got {type(masks).__name__}")
        if train is None or test is None:
            own_train, own_test = self.loaders(flat=not reads_images(model))
            train = own_train if train is None else train
            test = own_test if test is None else test
        optimizer = self.make_optimizer(model)
        handle = masks.attach(optimizer) if masks is not None else None
        history: list[dict] = []
        try:
            for lr, epochs in self.phases:
                optimizer.lr = lr
                history += fit(model, optimizer, CrossEntropyLoss(), train, epochs, progress=progress)
        finally:
            if handle is not None:
                handle.remove()
        return Trained(model, evaluate(model, test), train, test, history)

# %% [markdown]
# ### The papers' networks on MNIST
#
# The compression papers the course cites measure on MNIST's 28x28 digits with two
# networks, built here as they count them. LeNet-300-100 is an MLP, 784-300-100-10:
# 266,610 parameters. LeNet-5, in the form Deep Compression prunes (Caffe's LeNet), is
# two 5x5 convolutions of 20 and 50 filters, each followed by a 2x2 max-pool, then a
# Linear of 500 units and the 10 classes: 431,080 parameters. Caffe's version has no
# activation after its convolutions; this one puts a ReLU after each (as the digits CNN
# does), which trains faster on the 4,000 images of the sample and adds no parameter.
#
# `MnistRecipe` is the digits recipe with MNIST's loaders (`mnist_loaders`: the 4,000
# training images shuffled in `seed`'s order, the 1,000 test images in one batch) and
# defaults chosen for these networks: Adam at 1e-3 for 10 epochs, then 3 at 1e-4.
# `LENET5_RECIPE` is that; `LENET_300_100_RECIPE` trains the MLP for 15 epochs, then 5.

# %%
#| export
def lenet_300_100(seed: int | None = 0) -> Sequential:
    """LeNet-300-100 for 784-pixel rows: Linear(784, 300), ReLU, Linear(300, 100), ReLU, Linear(100, 10).

    266,610 parameters; `seed` as for `digits_mlp`.
    """
    return digits_mlp(LENET_300_100, seed)


def lenet5(seed: int | None = 0) -> Sequential:
    """LeNet-5 as Deep Compression counts it, for 1x28x28 images (431,080 parameters):
    Conv2d(1, 20, 5), ReLU, MaxPool2d(2), Conv2d(20, 50, 5), ReLU, MaxPool2d(2), Flatten,
    Linear(800, 500), ReLU, Linear(500, 10). `seed` as for `digits_mlp`.
    """
    _seed(seed)
    return Sequential(Conv2d(1, 20, 5), ReLU(), MaxPool2d(2), Conv2d(20, 50, 5), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(50 * 4 * 4, 500), ReLU(), Linear(500, 10))


def mnist_loaders(seed: int = 0, labels: int | None = None, *, flat: bool = True,
                  batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """(train, test) loaders of the MNIST sample: shuffled training batches, the 1,000 test images in one batch.

    Args and Raises as for `digits_loaders` (`labels` in [1, 4000]; rows of 784 pixels
    when `flat`, else 1x28x28 images).
    """
    return _loaders(load_mnist, seed, labels, flat, batch_size)


@dataclass(frozen=True)
class MnistRecipe(DigitsRecipe):
    """`DigitsRecipe` on the MNIST sample (`mnist_loaders`), with defaults for the LeNets:
    Adam at 1e-3 for 10 epochs, then 3 epochs at 1e-4, batches of 64."""

    epochs: int = 10
    lr: float = 1e-3
    then: tuple[tuple[float, int], ...] = ((1e-4, 3),)

    def loaders(self, flat: bool = True, labels: int | None = None) -> tuple[DataLoader, DataLoader]:
        """`mnist_loaders` with this recipe's seed and batch size."""
        return mnist_loaders(self.seed, labels, flat=flat, batch_size=self.batch_size)


# What each network's quoted dense accuracy comes from (`benchmarks/bench_papers.py`, seeds
# 0-2): LeNet-300-100 overfits the 4,000 images less with 5 more epochs at the small rate.
LENET_300_100_RECIPE = MnistRecipe(epochs=15, then=((1e-4, 5),))
LENET5_RECIPE = MnistRecipe()
