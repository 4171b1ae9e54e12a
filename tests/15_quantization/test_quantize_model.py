"""Module 15, tasks 15.7-15.8: calibration and whole-model conversion, on the digits too."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch.core.layers import Dropout, Linear, Module, ReLU, Sequential, Tanh
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import evaluate, fit
from tinytorch.data import DataLoader, TensorDataset
from tinytorch.quantization import (
    QuantizedConv2d,
    QuantizedLinear,
    calibrate,
    quantize_model,
)
from tinytorch.profiling import model_size_bytes
from tinytorch.recipes import DigitsRecipe, digits_cnn, digits_mlp


def _cnn() -> Sequential:
    return Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                      Conv2d(4, 6, 3, padding=1), Tanh(), AvgPool2d(2), Flatten(),
                      Dropout(0.2), Linear(24, 10))


class _Blocks(Module):
    """A model that is not a Sequential: children as attributes and in a list."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Sequential(Linear(8, 6), ReLU())
        self.blocks = [Linear(6, 6), Linear(6, 6)]
        self.head = Linear(6, 3)
        self.act = ReLU()

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = self.act(block(x))
        return self.head(x)


def _arrays(model: Module) -> dict[str, np.ndarray]:
    return {name: t.data.copy() for name, t in model.named_parameters() + model.named_buffers()}


# --- Task 15.7: calibrate -----------------------------------------------------------

@pytest.mark.task("15.7")
def test_calibrate_sets_max_abs_input_over_127(rng):
    manual_seed(0)
    model = Sequential(Linear(5, 4), ReLU(), Linear(4, 2))
    batches = [rng.normal(size=(3, 5)).astype(np.float32) * s for s in (1.0, 4.0, 0.5)]
    q = quantize_model(model)
    calibrate(q, batches)
    first, second = q[0], q[2]
    stacked = np.concatenate(batches)
    np.testing.assert_allclose(first.input_scale, np.abs(stacked).max() / 127, rtol=1e-6)
    # the second layer sees the ReLU of the first quantized layer's output
    hidden = np.maximum(q[0].forward_dequantized(stacked), 0)
    np.testing.assert_allclose(second.input_scale, np.abs(hidden).max() / 127, rtol=1e-5)
    assert isinstance(first.input_scale, np.float32)


@pytest.mark.task("15.7")
def test_calibrate_takes_loader_batches_and_restores_mode(rng):
    manual_seed(1)
    x = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, size=20)
    q = quantize_model(_cnn())
    q.train()
    calibrate(q, DataLoader(TensorDataset(x, y), batch_size=8))
    assert q.training and all(m.training for m in q.modules())
    bn = q[1]
    assert np.array_equal(bn.running_mean.data, np.zeros(4))   # eval mode: statistics untouched
    assert all(m.input_scale is not None for m in q.modules() if isinstance(m, (QuantizedLinear, QuantizedConv2d)))
    np.testing.assert_allclose(q[0].input_scale, np.abs(x).max() / 127, rtol=1e-6)


@pytest.mark.task("15.7")
def test_calibrate_with_zero_inputs_gives_positive_scale():
    manual_seed(2)
    q = quantize_model(Sequential(Linear(3, 2)))
    calibrate(q, np.zeros((4, 3), np.float32))        # a single array is one batch
    assert q[0].input_scale > 0
    np.testing.assert_allclose(q(np.zeros((1, 3), np.float32)).data, q[0].bias[None], atol=0)


def test_calibrate_errors():
    manual_seed(3)
    with pytest.raises(ValueError, match="quantize_model"):
        calibrate(Sequential(Linear(2, 2)), [np.ones((1, 2), np.float32)])
    with pytest.raises(ValueError, match="no batch"):
        calibrate(quantize_model(Sequential(Linear(2, 2))), [])


# --- Task 15.8: quantize_model ------------------------------------------------------

@pytest.mark.task("15.8")
def test_quantize_model_replaces_known_layers_and_keeps_the_rest(rng):
    manual_seed(4)
    model = _cnn()
    q = quantize_model(model)
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["QuantizedConv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "QuantizedConv2d", "Tanh",
                     "AvgPool2d", "Flatten", "Dropout", "QuantizedLinear"]
    assert not q.training
    assert [n for n, _ in q.named_parameters()] == ["1.weight", "1.bias"]   # only BatchNorm's remain
    x = rng.uniform(size=(5, 1, 8, 8)).astype(np.float32)
    model.eval()
    ref = model(Tensor(x)).data
    np.testing.assert_allclose(q(Tensor(x)).data, ref, atol=0.05)


@pytest.mark.task("15.8")
def test_quantize_model_does_not_change_its_input(rng):
    manual_seed(5)
    model = _cnn()
    model.train()
    fit(model, Adam(model.parameters(), lr=1e-2), CrossEntropyLoss(),
        DataLoader(TensorDataset(rng.uniform(size=(16, 1, 8, 8)).astype(np.float32),
                                 rng.integers(0, 10, size=16)), batch_size=8), epochs=1, progress=False)
    before = _arrays(model)
    layers_before = [type(m) for m in model.modules()]
    x = rng.uniform(size=(4, 1, 8, 8)).astype(np.float32)
    q = quantize_model(model, calibration_data=[x])
    q(x)
    after = _arrays(model)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    assert [type(m) for m in model.modules()] == layers_before
    assert model.training                               # its mode is not changed either
    assert not any(np.shares_memory(a.data, b.data) for a in model.buffers() for b in q.buffers())


@pytest.mark.task("15.8")
def test_quantize_model_walks_nested_modules_and_lists(rng):
    manual_seed(6)
    model = _Blocks()
    q = quantize_model(model)
    assert isinstance(q.stem[0], QuantizedLinear) and isinstance(q.stem[1], ReLU)
    assert isinstance(q.blocks, list) and all(isinstance(b, QuantizedLinear) for b in q.blocks)
    assert isinstance(q.head, QuantizedLinear)
    assert [n for n, _ in q.named_modules()] == [n for n, _ in model.named_modules()]
    x = rng.normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(q(Tensor(x)).data, model(Tensor(x)).data, atol=0.05)
    assert isinstance(quantize_model(Linear(3, 2)), QuantizedLinear)   # a bare layer converts too


@pytest.mark.task("15.8")
def test_pruned_weights_stay_zero_through_quantize_model(rng):
    manual_seed(7)
    model = _cnn()
    for layer in (model[0], model[4], model[9]):
        w = layer.weight.data
        w[np.abs(w) < np.quantile(np.abs(w), 0.7)] = 0.0
        w[0] = 0.0                                      # one whole unit pruned
    q = quantize_model(model)
    for float_layer, q_layer in ((model[0], q[0]), (model[4], q[4]), (model[9], q[9])):
        zeros = float_layer.weight.data == 0
        assert np.all(q_layer.qweight.values[zeros] == 0)
        assert np.all(q_layer.qweight.dequantize()[zeros] == 0.0)


@pytest.mark.task("15.8")
def test_quantized_model_bytes_are_the_int8_arrays():
    manual_seed(8)
    model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10))
    q = quantize_model(model)
    weights, units = 64 * 128 + 128 * 10, 128 + 10
    assert sum(m.qweight.values.nbytes for m in (q[0], q[2])) == weights            # 1 byte per weight
    assert q[0].nbytes + q[2].nbytes == weights + 4 * units + 8 * units             # + biases, scales, zero points
    # Module 14's model_size_bytes sees the same arrays
    assert model_size_bytes(model) == 4 * (weights + units)
    assert model_size_bytes(q) == q[0].nbytes + q[2].nbytes


def test_quantize_model_rejects_non_modules():
    with pytest.raises(TypeError, match="Module"):
        quantize_model([Linear(2, 2)])


# --- The digits: accuracy after quantization ----------------------------------------

def _train(flat: bool):
    """Lesson 15's digits networks and recipes (Module 09's `tinytorch.recipes`): (model, train, test)."""
    if flat:
        recipe = DigitsRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=20, batch_size=32)
    else:
        recipe = DigitsRecipe(optimizer="adam", lr=3e-3, epochs=10, batch_size=32)
    model, _, train, test, _ = recipe.fit(digits_mlp(seed=0) if flat else digits_cnn(seed=0))
    return model, train, test


@pytest.mark.slow
@pytest.mark.task("15.8")
@pytest.mark.parametrize("flat", [True, False], ids=["mlp", "cnn"])
def test_digits_accuracy_drops_at_most_half_a_point(flat):
    model, train, test = _train(flat)
    before = _arrays(model)
    float_acc = evaluate(model, test)
    assert float_acc > 0.9                              # the model did learn
    dequantized = evaluate(quantize_model(model), test)
    integer = evaluate(quantize_model(model, calibration_data=copy.copy(train)), test)
    # 0.5 points of 360 test images: at most one image may change its answer
    assert float_acc - dequantized <= 0.005 + 1e-12, (float_acc, dequantized)
    assert float_acc - integer <= 0.005 + 1e-12, (float_acc, integer)
    assert all(np.array_equal(v, _arrays(model)[k]) for k, v in before.items())
