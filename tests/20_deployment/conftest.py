"""Fixtures for Module 20: the four models of the issue's "done when", trained once per session."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch import recipes
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d


def digits_cnn(seed: int = 0) -> Sequential:
    """Conv-BN-ReLU-Pool twice, Flatten, Linear: the digits CNN on 1x8x8 images (Module 09's builder)."""
    return recipes.digits_cnn(batchnorm=True, seed=seed)


def every_layer_model(rng) -> Sequential:
    """One of each supported layer, random weights and BatchNorm statistics, in eval mode."""
    from tinytorch.core import activations as act
    from tinytorch.core.layers import Dropout
    from tinytorch.core.spatial import AvgPool2d

    model = Sequential(Conv2d(2, 4, 3, stride=2, padding=1), BatchNorm2d(4), act.GELU(), AvgPool2d(2, padding=1),
                       Conv2d(4, 3, 1, bias=False), act.Tanh(), MaxPool2d(2, stride=1), Dropout(0.3), Flatten(),
                       Linear(12, 6), act.Sigmoid(), Linear(6, 5, bias=False), act.Softmax(dim=1))
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32)
    model[1].running_mean.data[...] = rng.standard_normal(4).astype(np.float32)
    model[1].running_var.data[...] = rng.uniform(0.5, 2, 4).astype(np.float32)
    return model.eval()


def _train(model, epochs: int, seed: int = 0):
    """`model` trained by Module 09's recipe (Adam, lr 3e-3, batches of 64), in eval mode."""
    return recipes.DigitsRecipe(epochs=epochs, lr=3e-3, seed=seed).fit(model).model.eval()


@pytest.fixture(scope="session")
def digits():
    """(flat test rows, test images, test labels), and the training data for both shapes."""
    from tinytorch.datasets import load_digits

    xf, y, xf_test, y_test = load_digits(flat=True)
    xi, _, xi_test, _ = load_digits(flat=False)
    return {"flat": (xf, y, xf_test), "image": (xi, y, xi_test), "y_test": y_test}


@pytest.fixture(scope="session")
def models(digits):
    """name -> (model in eval mode, test inputs it reads)."""
    from tinytorch.compression import prune_and_quantize, remove_pruned_units, structured_prune

    xf_test, xi_test = digits["flat"][2], digits["image"][2]
    mlp = _train(recipes.digits_mlp(seed=0), 8)
    cnn = _train(digits_cnn(), 3)
    work = copy.deepcopy(cnn)
    removed = remove_pruned_units(work, structured_prune(work, 0.5)).eval()
    int8 = prune_and_quantize(mlp, 0.9).eval()
    return {"mlp": (mlp, xf_test), "cnn": (cnn, xi_test), "removed": (removed, xi_test), "int8": (int8, xf_test)}


def ours(model, x) -> np.ndarray:
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    with no_grad():
        return model(Tensor(x)).data
