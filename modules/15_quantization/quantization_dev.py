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
# # Module 15: INT8 Quantization
#
# > INT8 quantization: int8 tensors with float32 scales, quantized Linear and Conv2d layers, and whole-model conversion.
#
# A trained network stores every weight as a 32-bit float. Most of those 32 bits are
# noise as far as the network's decisions go: the weights of one layer sit in a narrow
# range, and 256 evenly spaced levels across that range describe them well enough.
# Storing each weight as one signed byte plus one float per tensor (or per output
# channel) that says how far apart the levels are cuts the weight memory by 4x.
#
# This module builds that, and measures what it costs:
#
# 1. `quantize_int8` / `QuantizedTensor`: real `np.int8` arrays with float32 scales,
#    per tensor or per output channel, symmetric or asymmetric.
# 2. The error: how far a value moves (at most half a step), how it shrinks with more
#    bits, and why per-channel scales matter on a real trained layer.
# 3. `QuantizedLinear` and `QuantizedConv2d`: layers that keep int8 weights in memory,
#    computed two ways: dequantize-then-matmul, or an integer matmul with int32
#    accumulation once the activations have calibrated scales.
# 4. `quantize_model`: convert a whole trained model, and check its accuracy on the
#    digits.
#
# Module 16 (Compression) prunes weights to exactly zero and then calls this module's
# quantizer, so one guarantee matters above all: **a zero stays exactly zero**.

# %%
#| default_exp quantization.int8

# %%
#| export
from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np

from tinytorch.core.tensor import Tensor

# %% [markdown]
# ## 1. The affine map from reals to integers
#
# Quantization approximates a real number `x` by an integer `q` and two constants that
# are shared by many numbers: a **scale** `s` (the size of one step) and a **zero
# point** `z` (the integer that stands for the real value 0):
#
# ```
# q = clip(round(x / s) + z, qmin, qmax)          x_hat = s * (q - z)
# ```
#
# As long as nothing is clipped, `round` moves `x / s` by at most 1/2, so
# `|x - x_hat| <= s / 2`: **every value lands within half a step**. The whole game is
# choosing `s` (and `z`) so that nothing is clipped and the steps are as small as
# possible.
#
# **Symmetric** quantization sets `z = 0` and `s = max|x| / 127`, using the integers
# `[-127, 127]`. Then `x = 0` gives `q = round(0) = 0` and `x_hat = 0` *exactly*: a
# pruned weight stays pruned. We give up the integer -128 to keep the range symmetric
# (negating a value never overflows, and a weight `w` and `-w` get the same error).
#
# **Asymmetric** quantization maps the actual range `[min, max]` onto all 256 integers
# `[-128, 127]`: `s = (max - min) / 255`, `z = round(-128 - min / s)`. It pays off when
# the values are lopsided (for example after a ReLU, all >= 0), where symmetric
# quantization wastes half its levels on numbers that never occur. Two details keep zero
# exact here too: the range is widened to include 0, and `z` is rounded to an integer, so
# `x = 0` maps to `q = z` and back to `s * (z - z) = 0`. (Section 3 shows what goes wrong
# with a fractional zero point.)
#
# **Per-channel** scales (`axis=0`) give every output unit (a row of a Linear weight, a
# filter of a Conv2d weight: axis 0 is always the output unit in TinyTorch) its own
# scale. One large filter then no longer coarsens the steps of all the others.

# %%
#| export
INT8_MIN, INT8_MAX = -128, 127
SYMMETRIC_MAX = 127  # symmetric quantization uses [-127, 127] so that 0 maps to 0


def _float_array(x: Tensor | np.ndarray, name: str = "x") -> np.ndarray:
    """The floating-point ndarray behind `x`, checked: non-empty, finite, float dtype."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point values, got dtype {data.dtype}; "
                        f"integer data is already discrete, convert it with .astype(np.float32) "
                        f"if you really mean to quantize it")
    if data.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {data.shape}")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf value(s) among {data.size}")
    return data


def _check_axis(axis: int | None, shape: tuple[int, ...]) -> None:
    if axis is None:
        return
    if axis != 0 or isinstance(axis, bool):
        raise ValueError(f"axis must be None (per tensor) or 0 (per output channel), got {axis!r}")
    if len(shape) == 0:
        raise ValueError("axis=0 needs at least one dimension, got a 0-d array")


def _per_channel(a: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """Reshape a per-channel vector `(C,)` so that it broadcasts along `axis` of an `ndim` array."""
    return a if axis is None else a.reshape((-1,) + (1,) * (ndim - 1))

# %% [markdown]
# `choose_qparams` computes the scale and zero point. The arithmetic runs in float64 so
# that a range near float32's limits cannot overflow, and the scale is rounded to float32
# *before* the zero point is computed from it: the numbers used to quantize must be the
# ones stored, or the round-trip bound would not hold for the stored values.
#
# **Trap:** an all-zero tensor (or an all-zero channel of a pruned layer) has `max|x| = 0`,
# which would make the scale 0 and `x / s` a division by zero. Any positive scale
# represents zeros exactly, so we use 1.

# %% nbgrader={"grade": false, "grade_id": "choose-qparams", "solution": true}
#| export
def choose_qparams(x: Tensor | np.ndarray, axis: int | None = None,
                   symmetric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The float32 scale(s) and int32 zero point(s) that map `x` onto int8. Task 15.1.

    Args:
        x: floating-point ndarray or Tensor, finite and non-empty.
        axis: `None` for one scale for the whole tensor, `0` for one per output channel.
        symmetric: `True` maps `[-max|x|, max|x|]` onto `[-127, 127]` with zero point 0;
            `False` maps `[min(x, 0), max(x, 0)]` onto `[-128, 127]` with an integer zero point.

    Returns:
        `(scale, zero_point)`: float32 and int32 arrays of shape `()` (per tensor) or
        `(x.shape[0],)` (per channel). Every scale is > 0.

    Raises:
        TypeError: `x` is not floating point. ValueError: empty, NaN/inf, or a bad axis.
    """
    data = _float_array(x)
    _check_axis(axis, data.shape)
    # Reduce over everything except the channel axis.
    over = None if axis is None else tuple(range(1, data.ndim))
    d = data.astype(np.float64)
    ### BEGIN SOLUTION
    if symmetric:
        scale = np.abs(d).max(axis=over) / SYMMETRIC_MAX
    else:
        # NOTE: widening the range to include 0 is what makes 0 representable exactly.
        lo = np.minimum(d.min(axis=over), 0.0)
        hi = np.maximum(d.max(axis=over), 0.0)
        scale = (hi - lo) / (INT8_MAX - INT8_MIN)
    scale = np.asarray(scale, dtype=np.float32)
    # An all-zero tensor or channel (or a range so tiny its scale underflows float32).
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    if symmetric:
        zero_point = np.zeros(scale.shape, dtype=np.int32)
    else:
        zp = np.round(INT8_MIN - lo / scale.astype(np.float64))
        zero_point = np.clip(zp, INT8_MIN, INT8_MAX).astype(np.int32)
    ### END SOLUTION
    return scale, zero_point

# %% nbgrader={"grade": true, "grade_id": "test-choose-qparams", "locked": true, "points": 2}
def test_unit_choose_qparams():
    """Task 15.1"""
    w = np.array([[0.5, -1.27, 0.0], [0.1, 0.2, -0.05]], dtype=np.float32)
    s, z = choose_qparams(w)
    assert s.dtype == np.float32 and s.shape == () and z.dtype == np.int32
    assert np.isclose(s, 1.27 / 127) and z == 0
    s, z = choose_qparams(w, axis=0)
    assert s.shape == (2,) and np.allclose(s, [1.27 / 127, 0.2 / 127]) and np.all(z == 0)
    s, z = choose_qparams(w, symmetric=False)
    assert np.isclose(s, (0.5 + 1.27) / 255)
    assert z == round(-128 + 1.27 / float(s))          # min(w) maps to -128
    s, z = choose_qparams(np.zeros((3, 4), np.float32), axis=0)
    assert np.all(s == 1.0) and np.all(z == 0)             # no division by zero
    print("choose_qparams: OK")

# %% [markdown]
# With the parameters chosen, quantizing is the formula from above: divide, round, add
# the zero point, clip to the integer range, and store as `np.int8`.
#
# The result is a `QuantizedTensor`: the int8 values together with what is needed to
# read them back. Its `.nbytes` counts the real bytes of all three arrays, so the memory
# figures later in this lesson are measured, not computed from a formula.

# %% nbgrader={"grade": false, "grade_id": "quantized-tensor", "solution": true}
#| export
class QuantizedTensor:
    """Int8 values with the float32 scale(s) and int32 zero point(s) that map them back to reals.

    `x_hat = scale * (values - zero_point)`, with one `(scale, zero_point)` for the whole
    tensor (`axis=None`, shapes `()`) or one per output channel (`axis=0`, shapes `(C,)`).
    """

    def __init__(self, values: np.ndarray, scale: np.ndarray | float,
                 zero_point: np.ndarray | int | None = None, axis: int | None = None) -> None:
        if not isinstance(values, np.ndarray) or values.dtype != np.int8:
            got = values.dtype if isinstance(values, np.ndarray) else type(values).__name__
            raise TypeError(f"values must be an np.int8 ndarray, got {got}")
        _check_axis(axis, values.shape)
        expected = () if axis is None else (values.shape[0],)
        scale = np.asarray(scale, dtype=np.float32)
        zero_point = np.zeros(expected, np.int32) if zero_point is None else np.asarray(zero_point)
        if scale.shape != expected or zero_point.shape != expected:
            raise ValueError(f"scale and zero_point must have shape {expected} for axis={axis} and "
                             f"values of shape {values.shape}, got {scale.shape} and {zero_point.shape}")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"every scale must be finite and > 0, got {scale}")
        if not np.issubdtype(zero_point.dtype, np.integer):
            raise TypeError(f"zero_point must be integer (0.0 must map to a whole level), "
                            f"got dtype {zero_point.dtype}")
        if np.any(zero_point < INT8_MIN) or np.any(zero_point > INT8_MAX):
            raise ValueError(f"zero_point must lie in [{INT8_MIN}, {INT8_MAX}], got {zero_point}")
        self.values = values
        self.scale = scale
        self.zero_point = zero_point.astype(np.int32)
        self.axis = axis

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def nbytes(self) -> int:
        """Bytes actually held: the int8 values plus the scales plus the zero points."""
        return int(self.values.nbytes + self.scale.nbytes + self.zero_point.nbytes)

    def dequantize(self) -> np.ndarray:
        """The float32 array `scale * (values - zero_point)`. Task 15.2."""
        ### BEGIN SOLUTION
        s = _per_channel(self.scale, self.values.ndim, self.axis)
        z = _per_channel(self.zero_point, self.values.ndim, self.axis)
        # NOTE: values - z lies in [-255, 255], exact in float32; one rounding, in the product.
        return (self.values.astype(np.float32) - z.astype(np.float32)) * s
        ### END SOLUTION

    def __repr__(self) -> str:
        kind = "per-tensor" if self.axis is None else f"per-channel(axis={self.axis})"
        return f"QuantizedTensor(shape={self.shape}, {kind}, nbytes={self.nbytes})"


def dequantize_int8(q: QuantizedTensor) -> np.ndarray:
    """The float32 array that the int8 tensor `q` stands for (`q.dequantize()`)."""
    if not isinstance(q, QuantizedTensor):
        raise TypeError(f"q must be a QuantizedTensor, got {type(q).__name__}")
    return q.dequantize()

# %% nbgrader={"grade": true, "grade_id": "test-quantized-tensor", "locked": true, "points": 1}
def test_unit_dequantize():
    """Task 15.2"""
    values = np.array([[-127, 0, 64], [10, -5, 127]], dtype=np.int8)
    q = QuantizedTensor(values, np.array([0.5, 0.25], np.float32), np.array([0, 3], np.int32), axis=0)
    expected = np.array([[-63.5, 0.0, 32.0], [1.75, -2.0, 31.0]], dtype=np.float32)
    out = dequantize_int8(q)
    assert out.dtype == np.float32 and np.array_equal(out, expected), out
    assert q.nbytes == 6 + 2 * 4 + 2 * 4
    print("dequantize: OK")

# %% nbgrader={"grade": false, "grade_id": "quantize-int8", "solution": true}
#| export
def quantize_int8(x: Tensor | np.ndarray, axis: int | None = None,
                  symmetric: bool = True) -> QuantizedTensor:
    """`x` as int8 values with float32 scale(s): round-trip error at most half a step. Task 15.3.

    Args:
        x: floating-point ndarray or Tensor, finite and non-empty.
        axis: `None` for per-tensor scales, `0` for one scale per output channel.
        symmetric: `True` (default) uses `[-127, 127]` with zero point 0, so 0.0 stays
            exactly 0.0; `False` uses `[-128, 127]` with an integer zero point.

    Returns:
        A `QuantizedTensor` with `np.int8` values of `x`'s shape.

    Raises:
        TypeError: `x` is not floating point. ValueError: empty, NaN/inf, or a bad axis.
    """
    data = _float_array(x)
    scale, zero_point = choose_qparams(data, axis=axis, symmetric=symmetric)
    s = _per_channel(scale, data.ndim, axis).astype(np.float64)
    z = _per_channel(zero_point, data.ndim, axis)
    qmin = -SYMMETRIC_MAX if symmetric else INT8_MIN
    ### BEGIN SOLUTION
    q = np.round(data.astype(np.float64) / s) + z
    values = np.clip(q, qmin, INT8_MAX).astype(np.int8)
    ### END SOLUTION
    return QuantizedTensor(values, scale, zero_point, axis)

# %% nbgrader={"grade": true, "grade_id": "test-quantize-int8", "locked": true, "points": 2}
def test_unit_quantize_int8():
    """Task 15.3"""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32)
    w[2] = 0.0                                     # an all-zero (pruned) channel
    w[0, :2] = 0.0
    for axis in (None, 0):
        for symmetric in (True, False):
            q = quantize_int8(w, axis=axis, symmetric=symmetric)
            assert q.values.dtype == np.int8 and q.shape == w.shape
            step = _per_channel(q.scale, w.ndim, axis)
            err = np.abs(q.dequantize() - w)
            # half a step, plus one float32 rounding of the dequantized value
            assert np.all(err <= step / 2 + np.spacing(np.abs(w) + step)), (axis, symmetric)
            assert np.all(q.dequantize()[w == 0] == 0.0)
    assert quantize_int8(w).values.min() >= -127
    try:
        quantize_int8(np.array([1.0, np.nan]))
    except ValueError as err:
        assert "NaN" in str(err)
    else:
        raise AssertionError("NaN input was accepted")
    print("quantize_int8: OK")
