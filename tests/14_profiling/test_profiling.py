"""Module 14: parameter counts, bytes, FLOPs against hand counts, and latency measurement."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch import recipes
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import is_grad_enabled
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import (count_flops, count_parameters, flops_by_layer, layer_flops, measure_latency,
                                 model_size_bytes)


def digits_cnn():
    """The digits CNN of Module 09's `tinytorch.recipes`, its weights drawn where the generator stands."""
    return recipes.digits_cnn(seed=None)


def test_count_parameters_matches_the_arrays():
    model = Sequential(digits_cnn(), BatchNorm2d(3), Linear(10, 4, bias=False))
    expected = sum(p.data.size for p in model.parameters())
    assert count_parameters(model) == expected == (80 + 1168 + 650) + 6 + 40
    assert isinstance(count_parameters(model), int)


@pytest.mark.task("14.1")
def test_shared_parameters_count_once():
    layer = Linear(5, 5)
    assert count_parameters(Sequential(layer, ReLU(), layer)) == 30
    assert model_size_bytes(Sequential(layer, ReLU(), layer)) == 120


@pytest.mark.task("14.1")
def test_model_size_bytes_is_the_arrays_nbytes():
    model = Sequential(Conv2d(3, 6, 3), BatchNorm2d(6), Flatten(), Linear(24, 5))
    arrays = [t.data for t in model.parameters() + model.buffers()]
    assert model_size_bytes(model) == sum(a.nbytes for a in arrays)
    # Gradients are not part of the model.
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    assert model_size_bytes(model) == sum(a.nbytes for a in arrays)


@pytest.mark.task("14.1")
def test_model_size_bytes_reads_real_dtypes_of_other_arrays():
    class Packed(Module):
        """A layer that stores int8 codes and a float32 scale, like a quantized layer."""

        def __init__(self):
            super().__init__()
            self.codes = np.zeros((10, 20), dtype=np.int8)
            self.scale = np.ones(10, dtype=np.float32)
            self.bias = Tensor(np.zeros(10, np.float32), requires_grad=True)

    class Quantized:
        nbytes = 123

    layer = Packed()
    assert model_size_bytes(layer) == 200 + 40 + 40
    layer.q = Quantized()
    assert model_size_bytes(layer) == 200 + 40 + 40 + 123


# Layers are built inside the test (lambdas), so a module still being written fails
# its own tests rather than this file's collection.
@pytest.mark.task("14.2")
@pytest.mark.parametrize("make, in_shape, out_shape, expected", [
    (lambda: Linear(64, 10), (32, 64), (32, 10), 2 * 32 * 64 * 10),
    (lambda: Linear(7, 3, bias=False), (2, 5, 7), (2, 5, 3), 2 * 10 * 7 * 3),
    (lambda: Conv2d(3, 8, 3, padding=1), (2, 3, 5, 5), (2, 8, 5, 5), 2 * 2 * 8 * 25 * 3 * 9),
    (lambda: Conv2d(4, 6, (3, 2), stride=2), (1, 4, 9, 9), (1, 6, 4, 4), 2 * 6 * 16 * 4 * 6),
    (lambda: MaxPool2d(2), (2, 8, 4, 4), (2, 8, 2, 2), 64 * 4),
    (lambda: AvgPool2d(3, 1, 1), (1, 2, 5, 5), (1, 2, 5, 5), 50 * 9),
    (lambda: BatchNorm2d(4), (2, 4, 3, 3), (2, 4, 3, 3), 2 * 72),
    (lambda: ReLU(), (2, 8), (2, 8), 0),
    (lambda: Flatten(), (2, 2, 2, 2), (2, 8), 0),
    (lambda: Dropout(0.5), (2, 8), (2, 8), 0),
], ids=["linear", "linear-3d", "conv", "conv-strided", "maxpool", "avgpool", "batchnorm", "relu", "flatten",
        "dropout"])
def test_layer_flops_follows_the_documented_convention(make, in_shape, out_shape, expected):
    assert layer_flops(make(), in_shape, out_shape) == expected


@pytest.mark.task("14.2")
def test_a_layer_can_count_itself_and_quantized_weights_count_like_float_ones():
    class Custom(Module):
        def flops(self, input_shape, output_shape):
            return 7 * input_shape[0]

    class FakeQuantizedLinear(Module):
        def __init__(self):
            super().__init__()
            self.qweight = np.zeros((10, 64), np.int8)  # only its .shape matters

    assert layer_flops(Custom(), (3, 1), (3, 1)) == 21
    assert layer_flops(FakeQuantizedLinear(), (4, 64), (4, 10)) == 2 * 4 * 64 * 10


@pytest.mark.task("14.3")
def test_count_flops_agrees_with_a_hand_count_for_a_cnn():
    model = Sequential(
        Conv2d(3, 8, 3, stride=2, padding=1),  # 16x16 -> 8x8
        BatchNorm2d(8), ReLU(),
        MaxPool2d(2),                          # 8x8 -> 4x4
        Conv2d(8, 12, 3),                      # 4x4 -> 2x2
        ReLU(),
        AvgPool2d(2),                          # 2x2 -> 1x1
        Flatten(), Linear(12, 10),
    )
    conv1 = 2 * (8 * 8) * 8 * (3 * 3 * 3)
    bn = 2 * (8 * 8 * 8)
    pool1 = (8 * 4 * 4) * (2 * 2)
    conv2 = 2 * (2 * 2) * 12 * (8 * 3 * 3)
    pool2 = 12 * (2 * 2)
    linear = 2 * 12 * 10
    per_image = conv1 + bn + pool1 + conv2 + pool2 + linear
    assert count_flops(model, (1, 3, 16, 16)) == per_image
    assert count_flops(model, (4, 3, 16, 16)) == 4 * per_image
    names = [name for name, _ in flops_by_layer(model, (1, 3, 16, 16))]
    assert names == [str(i) for i in range(9)]


@pytest.mark.task("14.3")
def test_count_flops_of_the_digits_cnn():
    # Conv 1->8 (8x8), pool, Conv 8->16 (4x4), pool, Linear 64->10.
    expected = 2 * 64 * 8 * 9 + 8 * 16 * 4 + 2 * 16 * 16 * 72 + 16 * 4 * 4 + 2 * 64 * 10
    assert count_flops(digits_cnn(), (1, 1, 8, 8)) == expected


@pytest.mark.task("14.3")
def test_count_flops_follows_a_smaller_layer_after_surgery():
    model = digits_cnn()
    keep = np.arange(4)  # keep 4 of conv 2's 16 filters, and the Linear inputs they feed
    model[3].weight = Tensor(model[3].weight.data[keep], requires_grad=True)
    model[3].bias = Tensor(model[3].bias.data[keep], requires_grad=True)
    model[3].out_channels = 4
    model[7].weight = Tensor(model[7].weight.data[:, :16], requires_grad=True)
    model[7].in_features = 16
    expected = 2 * 64 * 8 * 9 + 8 * 16 * 4 + 2 * 16 * 4 * 72 + 4 * 4 * 4 + 2 * 16 * 10
    assert count_flops(model, (1, 1, 8, 8)) == expected


@pytest.mark.task("14.3")
@given(batch=st.integers(1, 6), width=st.integers(1, 40))
def test_mlp_flops_scale_with_batch_and_width(batch, width):
    model = Sequential(Linear(10, width), ReLU(), Linear(width, 3))
    assert count_flops(model, (batch, 10)) == batch * 2 * (10 * width + width * 3)


@pytest.mark.task("14.3")
def test_count_flops_counts_each_call_of_a_shared_layer():
    layer = Linear(4, 4)
    assert count_flops(Sequential(layer, ReLU(), layer), (1, 4)) == 2 * (2 * 16)


@pytest.mark.task("14.3")
def test_count_flops_restores_mode_and_forward_even_on_error():
    model = digits_cnn()
    model.train()
    count_flops(model, (2, 1, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())
    with pytest.raises(ValueError, match=r"1 input channels.*\(1, 3, 8, 8\)"):
        count_flops(model, (1, 3, 8, 8))
    assert all("forward" not in vars(m) for m in model.modules()) and model.training


@pytest.mark.parametrize("bad", [(), (0, 4), (2.0, 4), "1,4", None, (True, 4)])
def test_count_flops_rejects_bad_input_shapes(bad):
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(Linear(4, 2), bad)


@pytest.mark.task("14.3")
def test_count_flops_does_not_change_the_model():
    model = Sequential(Conv2d(1, 2, 3), BatchNorm2d(2), Flatten(), Linear(2 * 36, 3))
    before = model.state_dict()
    count_flops(model, (2, 1, 8, 8))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


class Timed(Module):
    """Records (training, grad mode) per call; the calls listed in `slow` sleep."""

    def __init__(self, slow=()):
        super().__init__()
        self.layer, self.calls, self.slow = Linear(4, 2), [], set(slow)

    def forward(self, x):
        self.calls.append((self.training, is_grad_enabled()))
        if len(self.calls) in self.slow:
            time.sleep(0.2)
        return self.layer(x)


@pytest.mark.task("14.4")
def test_measure_latency_runs_warmup_then_repeats_in_eval_without_grad():
    model = Timed()
    seconds = measure_latency(model, np.ones((3, 4), np.float32), warmup=2, repeats=5)
    assert isinstance(seconds, float) and 0 < seconds < 0.1
    assert model.calls == [(False, False)] * 7
    assert model.training


@pytest.mark.task("14.4")
def test_measure_latency_is_a_median_that_ignores_a_slow_outlier():
    model = Timed(slow={1, 5})  # the warm-up call and one timed call sleep 0.2 s
    seconds = measure_latency(model, Tensor(np.ones((3, 4))), warmup=1, repeats=9)
    assert seconds < 0.1, "one outlier of 9 must not move the median"


@pytest.mark.parametrize("kwargs", [dict(warmup=-1), dict(repeats=0), dict(repeats=2.5),
                                    dict(warmup=True), dict(repeats=True)])
def test_measure_latency_rejects_bad_counts(kwargs):
    with pytest.raises(ValueError, match="warmup|repeats"):
        measure_latency(Linear(2, 2), np.ones((1, 2)), **kwargs)
