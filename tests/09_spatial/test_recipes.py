"""Module 09's given recipes: the digits builders against hand-built networks and shape formulas,
the loaders' data and order, and `DigitsRecipe.fit` against Module 07's loop written out.

Every comparison of weights is exact (`np.array_equal`): the recipe must reproduce the
hand-written code bit for bit, since the pages quote accuracies it produces.
"""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.activations import ReLU
from tinytorch.core.checks import ArgumentTypeError
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import evaluate, fit
from tinytorch.data.loader import DataLoader, TensorDataset
from tinytorch.datasets import load_digits
from tinytorch.recipes import (DIGITS_CNN, DIGITS_MLP, DigitsRecipe, Trained, digits_cnn, digits_loaders,
                               digits_mlp, reads_images)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def n_params(model) -> int:
    return sum(p.data.size for p in model.parameters())


# --- the builders -------------------------------------------------------------------------

@given(st.lists(st.integers(1, 40), min_size=2, max_size=5))
def test_mlp_layers_shapes_and_parameter_count(sizes):
    model = digits_mlp(sizes, seed=0)
    linears = [m for m in model if isinstance(m, Linear)]
    assert [type(m) for m in model] == [Linear, ReLU] * (len(sizes) - 2) + [Linear]
    assert [l.weight.shape for l in linears] == [(b, a) for a, b in zip(sizes[:-1], sizes[1:])]
    assert n_params(model) == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def test_the_course_networks_have_the_quoted_sizes():
    assert n_params(digits_mlp()) == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10 == 17_226
    assert n_params(digits_mlp((64, 300, 100, 10))) == 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert n_params(digits_cnn()) == (9 * 8 + 8) + (8 * 16 * 9 + 16) + (16 * 4 * 10 + 10) == 1_898
    assert (DIGITS_MLP, DIGITS_CNN) == ((64, 128, 64, 10), (8, 16))


@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.booleans())
def test_cnn_parameter_count_and_output_shape(channels, batchnorm):
    model = digits_cnn(channels, batchnorm=batchnorm, seed=0)
    c_in = (1,) + tuple(channels[:-1])
    side = 8 // 2 ** len(channels)
    expected = sum(a * b * 9 + b + (2 * b if batchnorm else 0) for a, b in zip(c_in, channels))
    assert n_params(model) == expected + channels[-1] * side * side * 10 + 10
    assert sum(isinstance(m, BatchNorm2d) for m in model) == (len(channels) if batchnorm else 0)
    assert model(Tensor(np.random.default_rng(0).random((3, 1, 8, 8)))).shape == (3, 10)


def test_builders_draw_in_the_order_of_the_hand_written_networks():
    # The pages' figures were produced by these exact constructions.
    manual_seed(3)
    mlp = Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))
    assert same_weights(digits_mlp(seed=3), mlp)
    manual_seed(3)
    cnn = Sequential(Conv2d(1, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                     Conv2d(8, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    assert same_weights(digits_cnn(batchnorm=True, seed=3), cnn)
    assert repr(digits_cnn(batchnorm=True)) == repr(cnn)


@pytest.mark.parametrize("build", [digits_mlp, digits_cnn])
def test_seeds_reproduce_and_differ(build):
    assert same_weights(build(seed=5), build(seed=5))
    assert not same_weights(build(seed=5), build(seed=6))
    # seed=None continues the generator: after manual_seed(5) it gives seed 5's weights, then new ones
    manual_seed(5)
    first, second = build(seed=None), build(seed=None)
    assert same_weights(first, build(seed=5)) and not same_weights(first, second)


@pytest.mark.parametrize("call, name, value", [
    (lambda: digits_mlp((64,)), "sizes", "(64,)"),
    (lambda: digits_mlp((64, 0, 10)), "sizes[1]", "0"),
    (lambda: digits_mlp((64, 2.5, 10)), "sizes[1]", "2.5"),
    (lambda: digits_mlp((64, True, 10)), "sizes[1]", "True"),
    (lambda: digits_mlp("64"), "sizes", "'64'"),
    (lambda: digits_mlp(seed=-1), "seed", "-1"),
    (lambda: digits_mlp(seed=1.0), "seed", "1.0"),
    (lambda: digits_cnn(()), "channels", "()"),
    (lambda: digits_cnn((1, 2, 3, 4)), "channels", "(1, 2, 3, 4)"),
    (lambda: digits_cnn((8, -1)), "channels[1]", "-1"),
    (lambda: digits_cnn(batchnorm=1), "batchnorm", "1"),
    (lambda: digits_loaders(-1), "seed", "-1"),
    (lambda: digits_loaders(labels=0), "labels", "0"),
    (lambda: digits_loaders(labels=5000), "labels", "5000"),
    (lambda: digits_loaders(batch_size=0), "batch_size", "0"),
    (lambda: digits_loaders(flat="no"), "flat", "'no'"),
])
def test_builders_and_loaders_refuse_bad_arguments_naming_the_value(call, name, value):
    with pytest.raises(ValueError, match=f"{re.escape(name)}.*{re.escape(value)}"):
        call()


# --- the data -----------------------------------------------------------------------------

@pytest.mark.parametrize("flat, shape", [(True, (64,)), (False, (1, 8, 8))])
def test_loaders_hold_the_digits_split(flat, shape):
    train, test = digits_loaders(0, flat=flat, batch_size=50)
    x_train, y_train, x_test, y_test = load_digits(flat=flat)
    assert len(train.dataset) == len(y_train) == 1437 and len(train) == math.ceil(1437 / 50)
    (xt, yt), = list(test)  # the 360 test images in one batch, in file order
    assert xt.shape == (360, *shape) and np.array_equal(xt.data, x_test) and np.array_equal(yt, y_test)
    xs = np.concatenate([x.data for x, _ in train])
    ys = np.concatenate([y for _, y in train])
    order = np.lexsort(xs.reshape(len(xs), -1).T)  # one epoch is a permutation of the training set
    ref = np.lexsort(x_train.reshape(len(x_train), -1).T)
    assert np.array_equal(xs[order], x_train[ref]) and np.array_equal(np.sort(ys), np.sort(y_train))


def batches(loader) -> list:
    return [y.copy() for _, y in loader]


def test_loader_order_depends_on_the_seed_alone():
    a, b = digits_loaders(4)[0], digits_loaders(4)[0]
    manual_seed(99)  # other draws in between change nothing
    assert all(np.array_equal(p, q) for p, q in zip(batches(a), batches(b)))
    assert not all(np.array_equal(p, q) for p, q in zip(batches(digits_loaders(4)[0]), batches(digits_loaders(5)[0])))
    assert DigitsRecipe(seed=4, batch_size=64).loaders()[0].seed == 4


def test_labels_keep_a_seeded_subset():
    x_all, y_all, _, _ = load_digits(flat=True)
    train = digits_loaders(2, 100)[0]
    assert len(train.dataset) == 100
    keep = np.random.default_rng(2).permutation(len(y_all))[:100]
    assert np.array_equal(train.dataset.arrays[0], x_all[keep])
    assert np.array_equal(train.dataset.arrays[1], digits_loaders(2, 100)[0].dataset.arrays[1])


def test_reads_images():
    assert reads_images(digits_cnn()) and not reads_images(digits_mlp())


# --- the recipe ---------------------------------------------------------------------------

def hand_written(model, optimizer, epochs, seed=0, batch_size=64, phases=()):
    """Module 07's loop written out, as the callers wrote it before the recipe existed."""
    x, y, _, _ = load_digits(flat=not reads_images(model))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    fit(model, optimizer, CrossEntropyLoss(), loader, epochs, progress=False)
    for lr, n in phases:
        optimizer.lr = lr
        fit(model, optimizer, CrossEntropyLoss(), loader, n, progress=False)
    return model


@pytest.mark.slow
def test_adam_recipe_equals_the_hand_written_loop_and_learns():
    run = DigitsRecipe(epochs=2, lr=3e-3, seed=1).fit(digits_mlp(seed=1))
    ref = digits_mlp(seed=1)
    hand_written(ref, Adam(ref.parameters(), lr=3e-3), 2, seed=1)
    assert isinstance(run, Trained) and same_weights(run.model, ref)
    assert run.accuracy == evaluate(ref, run.test) > 0.5  # chance is 0.1
    assert len(run.history) == 2 and run.history[-1]["loss"] < run.history[0]["loss"]
    assert same_weights(DigitsRecipe(epochs=2, lr=3e-3, seed=1).fit(digits_mlp(seed=1)).model, run.model)
    assert not same_weights(DigitsRecipe(epochs=2, lr=3e-3, seed=2).fit(digits_mlp(seed=1)).model, run.model)


@pytest.mark.slow
def test_sgd_recipe_with_a_second_phase_equals_the_hand_written_loop():
    recipe = DigitsRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=1,
                          then=[(0.005, 1)], batch_size=32, seed=0)
    assert recipe.then == ((0.005, 1),) and recipe.phases == ((0.05, 1), (0.005, 1))
    run = recipe.fit(digits_mlp(seed=0))
    ref = digits_mlp(seed=0)
    hand_written(ref, SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4), 1, batch_size=32,
                 phases=[(0.005, 1)])
    assert same_weights(run.model, ref) and len(run.history) == 2
    opt = recipe.make_optimizer(digits_mlp())
    assert isinstance(opt, SGD) and (opt.lr, opt.momentum, opt.weight_decay) == (0.05, 0.9, 5e-4)


@pytest.mark.slow
def test_cnn_reads_images_and_learns():
    run = DigitsRecipe(epochs=2, seed=0).fit(digits_cnn(seed=0))
    assert next(iter(run.train))[0].shape[1:] == (1, 8, 8)
    assert run.history[-1]["loss"] < run.history[0]["loss"] and run.accuracy > 0.3


class ZeroFirstRow:
    """A stand-in for Module 16's Masks: attach a post-step hook that zeroes row 0 of the first weight."""

    def __init__(self, model):
        self.weight, self.handles = model[0].weight, []

    def attach(self, optimizer):
        handle = optimizer.register_step_post_hook(lambda opt: self.weight.data.__setitem__(0, 0.0))
        self.handles.append(handle)
        return handle


def test_masks_are_held_while_training_and_detached_after():
    model = digits_mlp((64, 8, 10), seed=0)
    masks = ZeroFirstRow(model)
    run = DigitsRecipe(epochs=1).fit(model, masks=masks)
    assert np.all(model[0].weight.data[0] == 0) and np.any(model[0].weight.data[1] != 0)
    assert run.model is model and len(masks.handles) == 1


def test_given_loaders_are_used():
    train, test = digits_loaders(3, 50, batch_size=10)
    run = DigitsRecipe(epochs=1).fit(digits_mlp((64, 4, 10)), train, test)
    assert run.train is train and run.test is test and len(run.history) == 1


@pytest.mark.parametrize("kwargs, name, value", [
    ({"epochs": 0}, "epochs", "0"),
    ({"epochs": True}, "epochs", "True"),
    ({"lr": 0.0}, "lr", "0.0"),
    ({"lr": float("nan")}, "lr", "nan"),
    ({"optimizer": "rmsprop"}, "optimizer", "'rmsprop'"),
    ({"momentum": 0.9}, "momentum", "0.9"),  # Adam takes no momentum
    ({"optimizer": "sgd", "momentum": 1.0}, "momentum", "1.0"),
    ({"weight_decay": -1e-4}, "weight_decay", "-0.0001"),
    ({"batch_size": 0}, "batch_size", "0"),
    ({"seed": -2}, "seed", "-2"),
    ({"then": "fast"}, "then", "'fast'"),
    ({"then": ((0.1, 0),)}, "then[0] epochs", "0"),
    ({"then": ((-0.1, 3),)}, "then[0] lr", "-0.1"),
    ({"then": ((0.1,),)}, "then[0]", "(0.1,)"),
])
def test_recipe_refuses_bad_settings_naming_the_value(kwargs, name, value):
    with pytest.raises(ValueError, match=f"{re.escape(name)}.*{re.escape(value)}"):
        DigitsRecipe(**kwargs)


def test_recipe_is_frozen_and_fit_checks_its_arguments():
    recipe = DigitsRecipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 3
    with pytest.raises(ArgumentTypeError, match="model must be a tinytorch Module.*str"):
        recipe.fit("mlp")
    with pytest.raises(ArgumentTypeError, match="masks must have attach.*object"):
        recipe.fit(digits_mlp(), masks=object())
