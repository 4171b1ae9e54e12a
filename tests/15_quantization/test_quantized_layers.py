"""Module 15, tasks 15.4-15.6: the integer matmul and the quantized Linear and Conv2d layers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.layers import Linear
from tinytorch.core.spatial import Conv2d, conv2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.quantization import (
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedTensor,
    quantize_int8,
    quantize_with,
    quantized_matmul,
)


def _half_steps(q: QuantizedTensor) -> np.ndarray:
    """Half the quantization step of every weight, shaped like the weight."""
    step = q.scale.reshape((-1,) + (1,) * (len(q.shape) - 1))
    return np.broadcast_to(step / 2, q.shape).astype(np.float64)


def _apply(layer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The float layer's linear map (no bias) with weight `w`, in float64 for Linear."""
    if isinstance(layer, (Linear, QuantizedLinear)):
        return x.astype(np.float64) @ w.T
    return conv2d(Tensor(x), Tensor(w.astype(np.float32)), None, layer.stride, layer.padding).data


# --- Task 15.4: quantized_matmul -----------------------------------------------------

@pytest.mark.task("15.4")
def test_quantized_matmul_is_exact_integer_arithmetic(rng):
    xq = rng.integers(-127, 128, size=(7, 50)).astype(np.int8)
    qw = quantize_int8(rng.normal(size=(4, 50)).astype(np.float32), axis=0)
    out = quantized_matmul(xq, 0.03, qw)
    sums = xq.astype(np.int64) @ qw.values.astype(np.int64).T          # exact reference
    expected = sums.astype(np.float32) * (np.float32(0.03) * qw.scale)
    assert out.dtype == np.float32 and out.shape == (7, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.task("15.4")
def test_quantized_matmul_accumulates_without_overflow():
    k = 3000                                            # 3000 * 127 * 127 > 2**25, < 2**31
    xq = np.full((2, k), -127, np.int8)
    qw = QuantizedTensor(np.full((3, k), 127, np.int8), np.ones(3, np.float32), axis=0)
    out = quantized_matmul(xq, 1.0, qw)
    assert np.all(out == np.float32(-k * 127 * 127))


@pytest.mark.task("15.4")
def test_quantized_matmul_flattens_conv_filters(rng):
    qw = quantize_int8(rng.normal(size=(5, 2, 3, 3)).astype(np.float32), axis=0)
    xq = rng.integers(-127, 128, size=(4, 18)).astype(np.int8)
    expected = (xq.astype(np.float64) * 0.1) @ qw.dequantize().reshape(5, 18).T.astype(np.float64)
    np.testing.assert_allclose(quantized_matmul(xq, 0.1, qw), expected, rtol=1e-5, atol=1e-6)


def test_quantized_matmul_rejects_bad_inputs(rng):
    qw = quantize_int8(rng.normal(size=(3, 4)).astype(np.float32), axis=0)
    with pytest.raises(ValueError, match="int8"):
        quantized_matmul(np.zeros((2, 4), np.int32), 1.0, qw)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        quantized_matmul(np.zeros((2, 5), np.int8), 1.0, qw)
    asym = quantize_int8(rng.uniform(1, 2, size=(3, 4)).astype(np.float32), axis=0, symmetric=False)
    with pytest.raises(ValueError, match="symmetric"):
        quantized_matmul(np.zeros((2, 4), np.int8), 1.0, asym)


# --- Tasks 15.5 and 15.6: the layers, dequantize path ----------------------------------

def _layers():
    manual_seed(0)
    return [Linear(24, 9), Linear(10, 3, bias=False), Conv2d(3, 5, 3, padding=1),
            Conv2d(2, 4, (3, 2), stride=2, padding=(1, 0), bias=False)]


def _input_for(layer, rng, batch=4):
    if isinstance(layer, Linear):
        return rng.normal(size=(batch, layer.in_features)).astype(np.float32)
    return rng.normal(size=(batch, layer.in_channels, 7, 6)).astype(np.float32)


# Each layer's tests belong to its task: 15.5 for Linear, 15.6 for Conv2d.
_BY_TASK = [pytest.param(layer, marks=pytest.mark.task("15.5" if isinstance(layer, Linear) else "15.6"),
                         id=repr(layer)) for layer in _layers()]


@pytest.mark.parametrize("layer", _BY_TASK)
def test_from_float_holds_int8_weights_and_copies(layer, rng):
    cls = QuantizedLinear if isinstance(layer, Linear) else QuantizedConv2d
    q = cls.from_float(layer)
    assert isinstance(q.qweight, QuantizedTensor) and q.qweight.values.dtype == np.int8
    assert q.qweight.axis == 0 and q.qweight.shape == layer.weight.shape and np.all(q.qweight.zero_point == 0)
    np.testing.assert_array_equal(q.qweight.values, quantize_int8(layer.weight, axis=0).values)
    if layer.bias is None:
        assert q.bias is None
    else:
        assert q.bias.dtype == np.float32 and np.array_equal(q.bias, layer.bias.data)
        assert not np.shares_memory(q.bias, layer.bias.data)
    assert q.parameters() == []                          # nothing to train
    assert q.nbytes == q.qweight.nbytes + (0 if q.bias is None else q.bias.nbytes)
    if isinstance(layer, Conv2d):
        assert (q.stride, q.padding, q.kernel_size) == (layer.stride, layer.padding, layer.kernel_size)
    x = _input_for(layer, rng)
    assert q(x).shape == layer(Tensor(x)).shape


@pytest.mark.parametrize("layer", _BY_TASK)
def test_dequantize_path_within_weight_error(layer, rng):
    q = (QuantizedLinear if isinstance(layer, Linear) else QuantizedConv2d).from_float(layer)
    x = _input_for(layer, rng)
    ref = layer(Tensor(x)).data
    out = q(Tensor(x))
    assert isinstance(out, Tensor) and not out.requires_grad and out.shape == ref.shape
    # |x . (w - w_hat)| <= sum |x| * step / 2 (each weight moved by at most half its step)
    bound = _apply(layer, np.abs(x), _half_steps(q.qweight))
    assert np.all(np.abs(out.data - ref) <= bound + 1e-5)
    # and it is exactly the float computation with the dequantized weight
    w_hat = q.qweight.dequantize()
    with_w_hat = _apply(layer, x, w_hat) + (0 if layer.bias is None else
                                            layer.bias.data.reshape((-1,) + (1,) * (ref.ndim - 2)))
    np.testing.assert_allclose(out.data, with_w_hat, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(q(x).data, out.data)   # ndarray input works too


@pytest.mark.task("15.5")
def test_linear_keeps_leading_batch_axes(rng):
    manual_seed(1)
    layer = Linear(6, 4)
    q = QuantizedLinear.from_float(layer)
    x = rng.normal(size=(2, 3, 6)).astype(np.float32)
    assert q(x).shape == (2, 3, 4)
    q.input_scale = np.float32(np.abs(x).max() / 127)
    assert q(x).shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        q(np.zeros((2, 5), np.float32))


@pytest.mark.task("15.6")
def test_conv_matches_torch_with_dequantized_filters(rng):
    torch = pytest.importorskip("torch")
    manual_seed(2)
    conv = Conv2d(3, 4, 3, stride=2, padding=1)
    q = QuantizedConv2d.from_float(conv)
    x = rng.normal(size=(2, 3, 9, 8)).astype(np.float32)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(q.qweight.dequantize()),
                                     torch.from_numpy(q.bias), stride=2, padding=1).numpy()
    np.testing.assert_allclose(q(x).data, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.task("15.6")
def test_conv_rejects_wrong_channels(rng):
    manual_seed(3)
    q = QuantizedConv2d.from_float(Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="channels"):
        q(np.zeros((1, 2, 5, 5), np.float32))
    q.input_scale = np.float32(0.01)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        q(np.zeros((1, 2, 5, 5), np.float32))


def test_from_float_type_checks():
    manual_seed(4)
    with pytest.raises(TypeError, match="Linear"):
        QuantizedLinear.from_float(Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="Conv2d"):
        QuantizedConv2d.from_float(Linear(2, 2))
    per_tensor = quantize_int8(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis=0"):
        QuantizedLinear(per_tensor)


# --- The integer path (Task 15.4 inside the layers) ----------------------------------

@pytest.mark.task("15.4")
@pytest.mark.parametrize("layer", _layers(), ids=repr)
def test_integer_path_within_weight_and_activation_error(layer, rng):
    q = (QuantizedLinear if isinstance(layer, Linear) else QuantizedConv2d).from_float(layer)
    x = _input_for(layer, rng, batch=6)
    with pytest.raises(RuntimeError, match="calibrate"):
        q.forward_integer(x)
    q.input_scale = np.float32(np.abs(x).max() / 127)
    out = q(Tensor(x)).data
    np.testing.assert_array_equal(out, q.forward_integer(x))
    ref = layer(Tensor(x)).data
    # x.w - x_hat.w_hat = x.(w - w_hat) + (x - x_hat).w_hat: both terms bounded by half steps
    w_hat = q.qweight.dequantize()
    bound = (_apply(layer, np.abs(x), _half_steps(q.qweight))
             + _apply(layer, np.full_like(x, q.input_scale / 2), np.abs(w_hat)))
    assert np.all(np.abs(out - ref) <= bound + 1e-5)
    # and it is exactly the float computation on the dequantized input and weight
    x_hat = quantize_with(x, q.input_scale).dequantize()
    bias = 0 if layer.bias is None else layer.bias.data.reshape((-1,) + (1,) * (ref.ndim - 2))
    np.testing.assert_allclose(out, _apply(layer, x_hat, w_hat) + bias, rtol=1e-4, atol=1e-5)


@pytest.mark.task("15.4")
def test_integer_path_saturates_beyond_the_calibrated_range():
    q = QuantizedLinear(QuantizedTensor(np.array([[1]], np.int8), np.ones(1, np.float32), axis=0))
    q.input_scale = np.float32(0.5)                      # covers |x| <= 63.5
    np.testing.assert_array_equal(q(np.array([[1000.0], [-1000.0], [3.0]], np.float32)).data,
                                  [[63.5], [-63.5], [3.0]])


@pytest.mark.task("15.5")
@given(rows=st.integers(1, 6), cols=st.integers(1, 12), batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_pruned_rows_give_exact_bias(rows, cols, batch, seed):
    rng = np.random.default_rng(seed)
    manual_seed(seed)
    layer = Linear(cols, rows)
    layer.weight.data[0] = 0.0                           # a fully pruned output unit
    q = QuantizedLinear.from_float(layer)
    x = rng.normal(size=(batch, cols)).astype(np.float32)
    assert np.all(q.qweight.dequantize()[0] == 0.0)
    np.testing.assert_array_equal(q(x).data[:, 0], layer.bias.data[0])
