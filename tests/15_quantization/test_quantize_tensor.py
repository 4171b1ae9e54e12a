"""Module 15, tasks 15.1-15.3: choosing scales, quantizing to int8 and back."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from tinytorch.core.tensor import Tensor
from tinytorch.quantization import QuantizedTensor, choose_qparams, dequantize_int8, quantize_int8


def _bound(x: np.ndarray, q: QuantizedTensor) -> np.ndarray:
    """Half a quantization step per element, plus one float32 rounding of the result."""
    step = q.scale if q.axis is None else q.scale.reshape((-1,) + (1,) * (x.ndim - 1))
    return step / 2 + np.spacing(np.abs(x) + step)


# Values up to 1e4 in size (subnormals included); larger magnitudes only scale the step.
_values = st.floats(-1e4, 1e4, width=32)
_tensors = arrays(np.float32, array_shapes(min_dims=1, max_dims=4, max_side=6), elements=_values)


# --- Task 15.1: choose_qparams -------------------------------------------------------

@pytest.mark.task("15.1")
def test_symmetric_scale_is_max_abs_over_127(rng):
    w = rng.normal(size=(6, 3, 2, 2)).astype(np.float32)
    s, z = choose_qparams(w)
    assert s.shape == () and s.dtype == np.float32 and z.dtype == np.int32 and z == 0
    np.testing.assert_allclose(s, np.abs(w).max() / 127, rtol=1e-6)
    s, z = choose_qparams(w, axis=0)
    assert s.shape == (6,) and np.all(z == 0)
    np.testing.assert_allclose(s, np.abs(w).reshape(6, -1).max(axis=1) / 127, rtol=1e-6)


@pytest.mark.task("15.1")
def test_asymmetric_range_includes_zero(rng):
    x = rng.uniform(0.5, 3.0, size=(4, 5)).astype(np.float32)   # all positive
    s, z = choose_qparams(x, symmetric=False)
    np.testing.assert_allclose(s, x.max() / 255, rtol=1e-6)      # range [0, max]
    assert z == -128
    s, z = choose_qparams(-x, axis=0, symmetric=False)          # all negative
    np.testing.assert_allclose(s, x.max(axis=1) / 255, rtol=1e-6)
    assert np.all(z == 127)
    y = np.array([-1.0, 0.25, 3.0], np.float32)
    s, z = choose_qparams(y, symmetric=False)
    np.testing.assert_allclose(s, 4.0 / 255, rtol=1e-6)
    assert z == np.round(-128 + 1.0 / np.float64(s))


@pytest.mark.task("15.1")
@pytest.mark.parametrize("symmetric", [True, False])
def test_all_zero_tensor_and_channel_get_a_positive_scale(symmetric):
    w = np.zeros((3, 4), np.float32)
    w[1] = [0.5, -1.0, 0.0, 2.0]
    with np.errstate(all="raise"):                      # any division by zero would raise
        s, z = choose_qparams(w, axis=0, symmetric=symmetric)
        s0, _ = choose_qparams(np.zeros(5, np.float32), symmetric=symmetric)
        q = quantize_int8(w, axis=0, symmetric=symmetric)
    assert np.all(s > 0) and s0 > 0
    np.testing.assert_array_equal(q.dequantize()[[0, 2]], 0.0)


# --- Task 15.2: dequantize -----------------------------------------------------------

@pytest.mark.task("15.2")
def test_dequantize_matches_formula(rng):
    values = rng.integers(-128, 128, size=(5, 7)).astype(np.int8)
    scale = rng.uniform(0.01, 1.0, size=5).astype(np.float32)
    zp = rng.integers(-20, 20, size=5).astype(np.int32)
    q = QuantizedTensor(values, scale, zp, axis=0)
    expected = (values.astype(np.float64) - zp[:, None]) * scale[:, None].astype(np.float64)
    out = dequantize_int8(q)
    assert out.dtype == np.float32 and out.shape == (5, 7)
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=0)
    per_tensor = QuantizedTensor(values, np.float32(0.1), 3)
    np.testing.assert_allclose(per_tensor.dequantize(), (values.astype(np.float64) - 3) * np.float32(0.1),
                               rtol=1e-7)


def test_quantized_tensor_rejects_inconsistent_parts():
    v = np.zeros((2, 3), np.int8)
    with pytest.raises(TypeError, match="int8"):
        QuantizedTensor(v.astype(np.int16), 1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        QuantizedTensor(v, np.ones(3, np.float32), axis=0)
    with pytest.raises(ValueError, match="> 0"):
        QuantizedTensor(v, 0.0)
    with pytest.raises(TypeError, match="integer"):
        QuantizedTensor(v, 1.0, 0.5)
    with pytest.raises(TypeError, match="QuantizedTensor"):
        dequantize_int8(np.zeros(3))


# --- Task 15.3: quantize_int8 --------------------------------------------------------

@pytest.mark.task("15.3")
@given(x=_tensors, axis=st.sampled_from([None, 0]), symmetric=st.booleans())
def test_round_trip_within_half_a_step(x, axis, symmetric):
    q = quantize_int8(x, axis=axis, symmetric=symmetric)
    assert q.values.dtype == np.int8 and q.shape == x.shape and q.axis == axis
    assert q.scale.dtype == np.float32 and q.zero_point.dtype == np.int32
    err = np.abs(q.dequantize().astype(np.float64) - x)
    bound = _bound(x, q)
    worst = np.unravel_index(np.argmax(err - bound), x.shape)
    assert np.all(err <= bound), f"x={x[worst]} came back {q.dequantize()[worst]}, step {q.scale}"
    if symmetric:
        assert q.values.min() >= -127


@pytest.mark.task("15.3")
@given(x=_tensors, data=st.data(), axis=st.sampled_from([None, 0]), symmetric=st.booleans())
def test_zeros_stay_exactly_zero(x, data, axis, symmetric):
    pruned = data.draw(arrays(np.bool_, x.shape))
    x = np.where(pruned, np.float32(0.0), x)
    out = quantize_int8(x, axis=axis, symmetric=symmetric).dequantize()
    assert np.all(out[x == 0] == 0.0)


@pytest.mark.task("15.3")
def test_nbytes_counts_the_real_arrays(rng):
    w = rng.normal(size=(16, 9)).astype(np.float32)
    q = quantize_int8(w, axis=0)
    assert q.values.nbytes == w.size                     # one byte per weight
    assert q.nbytes == q.values.nbytes + q.scale.nbytes + q.zero_point.nbytes == 144 + 16 * 4 + 16 * 4
    assert quantize_int8(w).nbytes == 144 + 4 + 4
    assert w.nbytes / q.values.nbytes == 4


@pytest.mark.task("15.3")
def test_accepts_tensor_and_float64(rng):
    w = rng.normal(size=(3, 4))
    a = quantize_int8(Tensor(w), axis=0)
    b = quantize_int8(w.astype(np.float32), axis=0)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.scale, b.scale)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises(bad):
    x = np.ones((2, 2), np.float32)
    x[1, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        quantize_int8(x)
    with pytest.raises(ValueError, match="finite"):
        quantize_int8(x, axis=0, symmetric=False)


def test_integer_empty_and_bad_axis_raise():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        quantize_int8(np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="empty"):
        quantize_int8(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="axis"):
        quantize_int8(np.ones((2, 3), np.float32), axis=1)
    with pytest.raises(ValueError, match="0-d"):
        quantize_int8(np.float32(1.0), axis=0)


@pytest.mark.task("15.3")
def test_per_channel_error_not_worse_than_per_tensor(rng):
    # Rows of very different sizes: the per-tensor step is set by the largest row.
    w = (rng.normal(size=(8, 32)) * np.logspace(-2, 0, 8)[:, None]).astype(np.float32)
    per_tensor = np.abs(quantize_int8(w).dequantize() - w).mean()
    per_channel = np.abs(quantize_int8(w, axis=0).dequantize() - w).mean()
    assert per_channel < per_tensor


@pytest.mark.task("15.3")
@pytest.mark.filterwarnings("ignore:.*quantize_per:UserWarning")
@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_torch_quantize_given_the_same_parameters(rng, axis, symmetric):
    torch = pytest.importorskip("torch")
    w = rng.normal(size=(6, 10)).astype(np.float32)
    q = quantize_int8(w, axis=axis, symmetric=symmetric)
    t = torch.from_numpy(w)
    if axis is None:
        ref = torch.quantize_per_tensor(t, float(q.scale), int(q.zero_point), torch.qint8)
    else:
        ref = torch.quantize_per_channel(t, torch.from_numpy(q.scale.astype(np.float64)),
                                         torch.from_numpy(q.zero_point.astype(np.int64)), 0, torch.qint8)
    ref_values = ref.int_repr().numpy()
    # NOTE: torch multiplies by a float32 reciprocal of the scale; a value that sits on
    # a rounding boundary may land one level away. Everything else is identical.
    diff = np.abs(ref_values.astype(np.int32) - q.values)
    assert diff.max() <= 1 and np.mean(diff == 0) >= 0.99, diff
    np.testing.assert_allclose(ref.dequantize().numpy(), q.dequantize(), atol=float(q.scale.max()) + 1e-7)


# --- the float32 extremes and 0-d input ----------------------------------------------

_FMAX = np.finfo(np.float32).max


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("x", [[[_FMAX]], [[-_FMAX, _FMAX]], [[_FMAX], [1.0]], [[_FMAX, -3.0], [0.5, -_FMAX]]])
def test_the_float32_maximum_dequantizes_to_a_finite_value_within_half_a_step(x, axis):
    x = np.array(x, np.float32)
    q = quantize_int8(x, axis=axis)
    back = q.dequantize()
    assert np.isfinite(back).all(), back
    step = q.scale if axis is None else q.scale[:, None]
    assert np.all(np.abs(back.astype(np.float64) - x) <= step / 2 + np.spacing(np.abs(x).astype(np.float64))), (back, x)


@pytest.mark.parametrize("axis", [None, 0])
def test_an_asymmetric_range_wider_than_float32_stays_finite(axis):
    x = np.array([[-_FMAX, _FMAX, 1.0, 0.0]], np.float32)
    q = quantize_int8(x, axis=axis, symmetric=False)
    back = q.dequantize()
    assert np.isfinite(back).all() and back[0, 3] == 0.0, back
    assert np.all(np.abs(back.astype(np.float64) - x) <= 1.0001 * q.scale.max())  # about one step at the ends


@pytest.mark.parametrize("value", [np.float32(3.0), np.float64(-0.25), 2.5, np.array(7.0, np.float32)])
def test_a_scalar_quantizes_like_a_one_element_array(value):
    q = quantize_int8(value)
    assert isinstance(q.values, np.ndarray) and q.values.shape == () and q.values.dtype == np.int8
    one = quantize_int8(np.array([value], np.float64 if isinstance(value, float) else np.asarray(value).dtype))
    assert q.values == one.values[0] and q.scale == one.scale
    back = dequantize_int8(q)
    assert isinstance(back, np.ndarray) and back.shape == () and abs(back - float(value)) <= q.scale / 2
    with pytest.raises(ValueError, match="axis=0 needs at least one dimension"):
        quantize_int8(value, axis=0)
