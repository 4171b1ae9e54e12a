"""Module 15: numbers that enter are finite (and fit float32) or refused, and a refused call changes nothing."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tinytorch.core.layers import Linear, ReLU, Sequential
from tinytorch.core.tensor import manual_seed
from tinytorch.quantization import QuantizedLinear, calibrate, quantize_int8, quantize_model

FINITE = r"must be finite \(not NaN or inf\)"  # check_finite's words

BAD = [np.nan, np.inf, -np.inf]


def _model() -> Sequential:
    manual_seed(0)
    return Sequential(Linear(6, 8), ReLU(), Linear(8, 3))


def _scales(model) -> list:
    return [m.input_scale for m in model.modules() if isinstance(m, QuantizedLinear)]


@pytest.mark.task("15.3")
def test_quantize_int8_refuses_float64_beyond_float32_instead_of_saturating():
    x = np.array([[1.0, -2.0], [1e300, 0.5]])
    copy = x.copy()
    with pytest.raises(ValueError, match=rf"x {FINITE} and within float32's range \(\|x\| <= 3.4e38\); 1 of "
                                         r"its 4 values are not, the first 1e\+300 at index \[1, 0\]"):
        quantize_int8(x, axis=0)
    np.testing.assert_array_equal(x, copy)
    big = np.array([3e38, -1.0])  # float64 that float32 holds: quantized, scale finite
    q = quantize_int8(big)
    assert np.isfinite(q.scale).all() and q.values.tolist() == [127, 0]


@pytest.mark.task("15.7")
@pytest.mark.parametrize("bad", BAD + [1e39])
@pytest.mark.parametrize("calibrated_before", [False, True])
def test_calibrate_refuses_a_bad_batch_and_keeps_the_scales_it_had(bad, calibrated_before):
    rng = np.random.default_rng(0)
    q = quantize_model(_model())
    if calibrated_before:
        calibrate(q, rng.standard_normal((16, 6)).astype(np.float32))
    before, modes = _scales(q), [m.training for m in q.modules()]
    x = rng.standard_normal((32, 6))
    x[20, 2] = bad
    # NOTE: float64 batches as they are (a DataLoader would first round 1e39 to inf);
    # the first batch is fine and seen, the second refused: nothing the call started may stay
    with pytest.raises(ValueError, match=rf"calibration batch 1 {FINITE} and within float32's range .*"
                                         rf"1 of its 96 values are not, the first {re.escape(repr(bad))}"):
        calibrate(q, [(x[:16], None), (x[16:], None)])
    assert _scales(q) == before and [m.training for m in q.modules()] == modes
    with pytest.raises(ValueError, match=r"calibration batch 0 must be finite"):
        quantize_model(_model(), x)


@pytest.mark.task("15.5")
@pytest.mark.parametrize("bad", BAD + [1e300])
def test_a_quantized_layer_refuses_a_bias_that_is_not_finite(bad):
    layer = Linear(4, 3)
    bias = layer.bias.data.astype(np.float64)
    bias[1] = bad
    with pytest.raises(ValueError, match=r"bias must be finite.*1 of its 3 values are not"):
        QuantizedLinear(quantize_int8(layer.weight.data, axis=0), bias)
    layer.bias.data[1] = np.inf if bad == 1e300 else bad  # float32 holds 1e300 as inf
    with pytest.raises(ValueError, match=r"bias must be finite"):
        QuantizedLinear.from_float(layer)
    with pytest.raises(ValueError, match=r"bias must be finite"):
        quantize_model(Sequential(layer))
