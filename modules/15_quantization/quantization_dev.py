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
#
# The lesson writes three files of `tinytorch.quantization`, and each code cell below
# says which: `int8.py` (sections 1-2, the int8 tensor and the quantizers),
# `layers.py` (section 3, the quantized layers) and `convert.py` (calibration and
# section 4, whole models). The import cells come first, before this lesson defines
# the names they bring in.

# %%
#| default_exp quantization.int8

# %%
#| export quantization.layers
from __future__ import annotations
"""Quantized layers: the integer matmul, and Linear and Conv2d layers that keep int8 weights (Module 15, section 3)."""

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_finite, check_instance, check_pair
from tinytorch.core.layers import Linear, Module
from tinytorch.core.spatial import Conv2d, conv2d, conv_output_size, im2col
from tinytorch.core.tensor import Tensor

# %%
#| export
import numpy as np

from tinytorch.core.checks import check_finite, check_instance
from tinytorch.core.tensor import Tensor

# %%
#| export quantization.layers
from tinytorch.quantization.int8 import QuantizedTensor, quantize_int8, quantize_with

# %%
#| export quantization.convert
"""Whole models in int8: calibrating the quantized layers' input scales, and quantize_model (Module 15, sections 3-4)."""
import copy
from collections.abc import Iterable

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_finite, check_instance
from tinytorch.core.layers import Linear, Module
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor
from tinytorch.quantization.int8 import SYMMETRIC_MAX
from tinytorch.quantization.layers import QuantizedConv2d, QuantizedLayer, QuantizedLinear

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
# `x = 0` maps to `q = z` and back to `s * (z - z) = 0`. (Section 2 shows what goes wrong
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
    # NOTE: float32 scales: a float64 1e300 would give an inf scale, or saturate silently
    return check_finite(name, data, float32=True)


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


def _checked_qparams(scale: np.ndarray | float, zero_point: np.ndarray | int,
                     shape: tuple[int, ...], axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """`(scale, zero_point)` as float32 / int32 arrays, checked against a tensor of `shape`."""
    _check_axis(axis, shape)
    expected = () if axis is None else (shape[0],)
    scale = np.asarray(scale, dtype=np.float32)
    zero_point = np.asarray(zero_point)
    if scale.shape != expected:
        raise ValueError(f"scale must have shape {expected} for axis={axis} and a tensor of shape {shape}, "
                         f"got {scale.shape}")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"every scale must be finite and > 0, got {scale}")
    if not np.issubdtype(zero_point.dtype, np.integer):
        raise TypeError(f"zero_point must be an integer (0.0 must land on a level), got dtype {zero_point.dtype}")
    zero_point = np.broadcast_to(zero_point, expected).astype(np.int32)  # a scalar 0 serves every channel
    if np.any(zero_point < INT8_MIN) or np.any(zero_point > INT8_MAX):
        raise ValueError(f"zero_point must lie in [{INT8_MIN}, {INT8_MAX}], got {zero_point}")
    return scale, zero_point


def _finite_levels(scale: np.ndarray, zero_point: np.ndarray, symmetric: bool) -> np.ndarray:
    """`scale`, lowered by a few ulps where its outermost level would dequantize to inf.

    NOTE: a scale rounded up keeps max|x| / scale <= 127, but near the float32 maximum
    127 * scale itself overflows (quantize_int8 of 3.4e38 came back as inf). One ulp less
    costs a relative error of 6e-8 on that value, far inside half a step. An asymmetric
    range wider than the float32 maximum (from -3.4e38 to 3.4e38) cannot keep both ends
    within half a step of a finite level: its scale shrinks until the outermost level is
    finite, and its ends come back within about one step.
    """
    reach = np.broadcast_to(np.float32(SYMMETRIC_MAX) if symmetric else
                            np.maximum(INT8_MAX - zero_point, zero_point - INT8_MIN).astype(np.float32),
                            np.shape(scale))
    scale = np.array(scale, dtype=np.float32)
    with np.errstate(over="ignore"):
        for _ in range(4):
            over = ~np.isfinite(reach * scale)
            if not over.any():
                return scale
            scale[over] = np.nextafter(scale[over], np.float32(0))
        top = np.float32(np.finfo(np.float32).max)
        scale[over] = np.nextafter(top / reach[over], np.float32(0))
    return scale

# %% [markdown]
# `choose_qparams` computes the scale and zero point. The arithmetic runs in float64 so
# that a range near float32's limits cannot overflow, and the scale is rounded to float32
# *before* the zero point is computed from it: the numbers used to quantize must be the
# ones stored, or the round-trip bound would not hold for the stored values. It is
# rounded *up*, so the largest value still fits in 127 steps.
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
        TypeError: `x` is not floating point. ValueError: empty, NaN/inf, beyond float32's
            range (a float64 1e300), or a bad axis.
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
    exact = np.asarray(scale, dtype=np.float64)
    scale = exact.astype(np.float32)
    # NOTE: round the stored scale up, never down, so that max|x| / scale <= 127 and
    # nothing is clipped (a subnormal scale can round down by a large fraction).
    low = scale < exact
    scale[low] = np.nextafter(scale[low], np.float32(np.inf))
    # An all-zero tensor or channel: any positive scale represents it exactly.
    scale[scale == 0] = 1.0
    if symmetric:
        zero_point = np.zeros(scale.shape, dtype=np.int32)
    else:
        zp = np.round(INT8_MIN - lo / scale.astype(np.float64))
        zero_point = np.clip(zp, INT8_MIN, INT8_MAX).astype(np.int32)
    ### END SOLUTION
    return _finite_levels(scale, zero_point, symmetric), zero_point

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
# The quantized result is a `QuantizedTensor`: the int8 values together with what is
# needed to read them back. Its `.nbytes` counts the real bytes of all three arrays, so
# the memory figures later in this lesson are measured, not computed from a formula.
# Reading back (dequantizing) is the right half of the formula in Section 1.

# %% nbgrader={"grade": false, "grade_id": "quantized-tensor", "solution": true}
#| export
class QuantizedTensor:
    """Int8 values with the float32 scale(s) and int32 zero point(s) that map them back to reals.

    `x_hat = scale * (values - zero_point)`, with one `(scale, zero_point)` for the whole
    tensor (`axis=None`, shapes `()`) or one per output channel (`axis=0`, shapes `(C,)`).
    """

    def __init__(self, values: np.ndarray, scale: np.ndarray | float,
                 zero_point: np.ndarray | int = 0, axis: int | None = None) -> None:
        if not isinstance(values, np.ndarray) or values.dtype != np.int8:
            got = values.dtype if isinstance(values, np.ndarray) else type(values).__name__
            raise TypeError(f"values must be an np.int8 ndarray, got {got}")
        self.scale, self.zero_point = _checked_qparams(scale, zero_point, values.shape, axis)
        self.values = values
        self.axis = axis

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantized tensor (that of `values`)."""
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
    check_instance("q", q, QuantizedTensor, "a QuantizedTensor")
    return np.asarray(q.dequantize())

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

# %% [markdown]
# Quantizing with given parameters is the formula from Section 1: divide, round, add the
# zero point, clip to the integer range, store as `np.int8`. It is a function of its own
# (PyTorch calls it `quantize_per_tensor` / `quantize_per_channel`) because activations
# need it too: their scale is measured once, on calibration data, and then reused on
# every batch, where a value beyond the calibrated range *saturates* at +-127 steps.
# `quantize_int8` then is just "choose the parameters from `x`, then quantize".

# %% nbgrader={"grade": false, "grade_id": "quantize-int8", "solution": true}
#| export
def quantize_with(x: Tensor | np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int = 0,
                  axis: int | None = None, symmetric: bool = True) -> QuantizedTensor:
    """`x` rounded onto the int8 levels of a given scale and zero point; values beyond them saturate. Task 15.3.

    Args:
        x: floating-point ndarray or Tensor, finite and non-empty.
        scale: step size(s) > 0, shape `()` or `(x.shape[0],)` for `axis=0`.
        zero_point: the integer(s) that stand for 0.0 (0 for symmetric quantization).
        axis: `None` (per tensor) or `0` (per output channel).
        symmetric: clip to `[-127, 127]` (`True`) or `[-128, 127]`.

    Returns:
        A `QuantizedTensor` of `x`'s shape with `np.int8` values.

    Raises:
        TypeError / ValueError: bad `x` (see `quantize_int8`), or scales that are not > 0.
    """
    data = _float_array(x)
    scale, zero_point = _checked_qparams(scale, zero_point, data.shape, axis)
    s = _per_channel(scale, data.ndim, axis).astype(np.float64)
    z = _per_channel(zero_point, data.ndim, axis)
    qmin = -SYMMETRIC_MAX if symmetric else INT8_MIN
    ### BEGIN SOLUTION
    q = np.round(data.astype(np.float64) / s) + z
    values = np.clip(q, qmin, INT8_MAX).astype(np.int8)
    ### END SOLUTION
    # NOTE: NumPy turns the rounding of a 0-d array into a scalar; keep an array
    return QuantizedTensor(np.asarray(values), scale, zero_point, axis)


def quantize_int8(x: Tensor | np.ndarray, axis: int | None = None,
                  symmetric: bool = True) -> QuantizedTensor:
    """`x` as int8 values with float32 scale(s): every value within half a step of the original.

    Args:
        x: floating-point ndarray or Tensor, finite and non-empty.
        axis: `None` for per-tensor scales, `0` for one scale per output channel.
        symmetric: `True` (default) uses `[-127, 127]` with zero point 0, so 0.0 stays
            exactly 0.0; `False` uses `[-128, 127]` with an integer zero point (0.0 stays
            exactly 0.0 too, because the zero point is a whole level).

    Returns:
        A `QuantizedTensor` with `np.int8` values of `x`'s shape.

    Raises:
        TypeError: `x` is not floating point. ValueError: empty, NaN/inf, beyond float32's
            range (a float64 1e300), or a bad axis.
    """
    data = _float_array(x)
    scale, zero_point = choose_qparams(data, axis=axis, symmetric=symmetric)
    return quantize_with(data, scale, zero_point, axis=axis, symmetric=symmetric)

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

# %% [markdown]
# ## 2. Measuring the error
#
# A quick look at a weight-like matrix: every value moves by at most half a step, the
# int8 array really is a quarter of the float32 one, and the zeros we planted survive.

# %%
_rng = np.random.default_rng(0)
_w = (_rng.normal(size=(64, 128)) * 0.1).astype(np.float32)
_w[np.abs(_w) < 0.05] = 0.0                       # as if pruned
_q = quantize_int8(_w, axis=0)
print(_q)
print(f"float32: {_w.nbytes} B, int8 values: {_q.values.nbytes} B, with scales and zero points: "
      f"{_q.nbytes} B ({_w.nbytes / _q.nbytes:.2f}x smaller)")
_err = np.abs(_q.dequantize() - _w) / _q.scale[:, None]
print(f"largest error: {_err.max():.4f} steps; zeros kept: "
      f"{np.count_nonzero(_q.dequantize()[_w == 0] == 0)} of {np.count_nonzero(_w == 0)}")

# %% [markdown]
# **Error against bits.** Each bit doubles the number of levels and halves the step, so
# the error should halve too: 8 bits is not magic, just the smallest standard integer
# type that keeps the error small. The demo below repeats the symmetric formula with
# `2**(bits-1) - 1` levels on each side (only 8 bits is stored as a real integer type).

# %%
def _symmetric_round_trip(x: np.ndarray, bits: int) -> np.ndarray:
    levels = 2 ** (bits - 1) - 1
    step = np.abs(x).max() / levels
    return np.clip(np.round(x / step), -levels, levels) * step


_w = (_rng.normal(size=(64, 128)) * 0.1).astype(np.float32)
print(" bits   mean |error|   ratio to previous")
_prev = None
for _bits in range(2, 9):
    _e = np.abs(_symmetric_round_trip(_w, _bits) - _w).mean()
    print(f"{_bits:5d}   {_e:12.2e}   {'' if _prev is None else f'{_prev / _e:.2f}'}")
    _prev = _e
assert np.isclose(np.abs(quantize_int8(_w).dequantize() - _w).mean(), _prev, rtol=1e-3)

# %% [markdown]
# **Why the zero point must be an integer.** The asymmetric formula could use the exact,
# fractional `z = -128 - min / s`. Then `x = 0` becomes `round(0 + z)`, which is not `z`,
# and reads back as `s * (round(z) - z)`: a small number that is *not* zero. Every
# pruned weight would come back as the same tiny non-zero value, and Module 16's sparse
# formats would find no zeros to drop. Rounding `z` first makes 0 land exactly on a level.

# %%
_x = np.array([-0.37, 0.0, 0.0, 0.52, 1.9], dtype=np.float32)
_lo, _hi = min(_x.min(), 0.0), max(_x.max(), 0.0)
_s = (_hi - _lo) / 255
_z_frac = -128 - _lo / _s                        # fractional zero point
_back_frac = _s * (np.clip(np.round(_x / _s + _z_frac), -128, 127) - _z_frac)
_back_int = quantize_int8(_x, symmetric=False).dequantize()
print(f"fractional zero point {_z_frac:.3f}: zeros come back as {_back_frac[1]:.2e}")
print(f"integer zero point {int(quantize_int8(_x, symmetric=False).zero_point)}: zeros come back as {_back_int[1]}")
assert _back_frac[1] != 0.0 and _back_int[1] == 0.0

# %% [markdown]
# **On disk.** The int8 values stay one byte each when saved: `np.savez` writes the
# arrays as they are, plus a few hundred bytes of headers.

# %%
import io

_q = quantize_int8(_w, axis=0)
_buf_fp32, _buf_int8 = io.BytesIO(), io.BytesIO()
np.savez(_buf_fp32, w=_w)
np.savez(_buf_int8, values=_q.values, scale=_q.scale, zero_point=_q.zero_point)
print(f"saved float32: {_buf_fp32.getbuffer().nbytes} B, saved int8: {_buf_int8.getbuffer().nbytes} B "
      f"(in memory: {_w.nbytes} B and {_q.nbytes} B)")

# %% [markdown]
# ## 3. Quantized layers
#
# A quantized layer keeps `qweight`, a per-output-channel symmetric `QuantizedTensor`,
# and the float32 bias (biases are few, and they are added after the matmul, where
# precision is cheap). There are two ways to compute with it.
#
# **Path A, dequantize then matmul.** Turn the int8 weight back into float32 just for
# this call and run the float layer's computation: `y = x @ W_hat^T + b`. Memory holds
# int8; arithmetic is float32 through NumPy's BLAS. The only error is the weight's.
#
# **Path B, integer matmul.** Quantize the input too, with a scale `s_x` fixed in
# advance, and multiply integers:
#
# ```
# y[n, o] = sum_k x[n, k] W[o, k]  ~=  s_x * s_w[o] * sum_k xq[n, k] Wq[o, k]
# ```
#
# The sum is over integers, and the two scales come out as one float per output
# column. This is what int8 hardware does (8-bit multiplies into 32-bit accumulators).
# The input scale needs **calibration**: run some representative batches through the
# model, record the largest `|x|` each layer sees, and set `s_x = max|x| / 127`.
# Section 4 measures which path is faster in NumPy.
#
# Both layers are inference-only: their output is a fresh Tensor with no graph, and
# `parameters()` does not list the int8 weight (there is nothing to train).

# %% nbgrader={"grade": false, "grade_id": "quantized-matmul", "solution": true}
#| export quantization.layers
def quantized_matmul(xq: np.ndarray, x_scale: float, qweight: QuantizedTensor) -> np.ndarray:
    """`x @ W^T` from int8 inputs and a symmetric int8 weight: int32 sums, one float rescale. Task 15.4.

    Args:
        xq: int8 inputs `(M, K)`, quantized symmetrically with the single step `x_scale`.
        x_scale: the inputs' step.
        qweight: symmetric int8 weight whose axis 0 is the output unit; its other axes
            flatten to `K` (a Conv2d filter `(C, kh, kw)` becomes one row).

    Returns:
        float32 `(M, out)`: `x_scale * scale[o] * sum_k xq[m, k] * values[o, k]`.
    """
    if np.any(qweight.zero_point != 0):
        raise ValueError("quantized_matmul needs a symmetric weight (zero_point 0); "
                         "quantize it with quantize_int8(w, axis=0)")
    w = qweight.values.reshape(qweight.shape[0], -1)
    if xq.dtype != np.int8 or xq.ndim != 2 or xq.shape[1] != w.shape[1]:
        raise ValueError(f"xq must be int8 of shape (M, {w.shape[1]}), got {xq.dtype} {xq.shape}")
    ### BEGIN SOLUTION
    # NOTE: int8 products summed in int8 would overflow at once (127 * 127 = 16129);
    # int32 holds the sum of K such products exactly for K up to 133,000.
    acc = xq.astype(np.int32) @ w.astype(np.int32).T
    return acc.astype(np.float32) * (np.float32(x_scale) * qweight.scale)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-quantized-matmul", "locked": true, "points": 2}
def test_unit_quantized_matmul():
    """Task 15.4"""
    rng = np.random.default_rng(1)
    xq = rng.integers(-127, 128, size=(5, 40)).astype(np.int8)
    qw = quantize_int8(rng.normal(size=(3, 40)).astype(np.float32), axis=0)
    out = quantized_matmul(xq, 0.02, qw)
    exact = (xq.astype(np.float64) * 0.02) @ qw.dequantize().astype(np.float64).T
    assert out.dtype == np.float32 and out.shape == (5, 3)
    assert np.allclose(out, exact, rtol=1e-5, atol=1e-6)
    big = np.full((1, 200), 127, np.int8)                 # the sum would overflow int16
    ones = QuantizedTensor(big.copy(), np.ones(1, np.float32), axis=0)
    assert quantized_matmul(big, 1.0, ones)[0, 0] == 200 * 127 * 127
    print("quantized_matmul: OK")

# %% [markdown]
# Both layers share what is not specific to the weight's shape: holding `qweight`, the
# bias and the calibrated input scale, choosing the path, and watching the inputs
# while `calibrate` runs. Each layer then defines its two paths.

# %%
#| export quantization.layers
class QuantizedLayer(Module):
    """Common part of QuantizedLinear and QuantizedConv2d: int8 weight, float bias, two forward paths."""

    def __init__(self, qweight: QuantizedTensor, bias: np.ndarray | None) -> None:
        super().__init__()
        check_instance("qweight", qweight, QuantizedTensor, "a QuantizedTensor")
        if qweight.axis != 0 or np.any(qweight.zero_point != 0):
            raise ValueError(f"qweight must be per-output-channel (axis=0) and symmetric, got axis="
                             f"{qweight.axis}; use quantize_int8(weight, axis=0)")
        if bias is not None:
            bias = np.array(check_finite("bias", bias, float32=True), dtype=np.float32)
            if bias.shape != (qweight.shape[0],):
                raise ValueError(f"bias must have shape ({qweight.shape[0]},), got {bias.shape}")
        self.qweight = qweight
        self.bias = bias
        # Set by calibrate(); while it is None the layer uses the dequantize path.
        self.input_scale: np.float32 | None = None
        self._observed_max: float | None = None  # running max|x| while calibrate() watches

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """The layer's output: integer path once calibrated, dequantize path before."""
        data = x.data if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
        if self._observed_max is not None:
            self._observed_max = max(self._observed_max, float(np.abs(data).max(initial=0.0)))
        if self.input_scale is None:
            return Tensor(self.forward_dequantized(data))
        return Tensor(self.forward_integer(data))

    def _input_int8(self, x: np.ndarray) -> np.ndarray:
        if self.input_scale is None:
            raise RuntimeError(f"{type(self).__name__}.forward_integer needs an input scale; "
                               f"run calibrate(model, batches) first")
        return quantize_with(x, self.input_scale).values

    def forward_dequantized(self, x: np.ndarray) -> np.ndarray:
        """Path A: float32 output computed with the dequantized weight."""
        raise NotImplementedError(f"{type(self).__name__} must define forward_dequantized()")

    def forward_integer(self, x: np.ndarray) -> np.ndarray:
        """Path B: float32 output computed from int8 inputs and weights with int32 sums."""
        raise NotImplementedError(f"{type(self).__name__} must define forward_integer()")

    @property
    def nbytes(self) -> int:
        """Bytes held by the int8 weight (with its scales) and the float32 bias."""
        return self.qweight.nbytes + (0 if self.bias is None else self.bias.nbytes)

# %% nbgrader={"grade": false, "grade_id": "quantized-linear", "solution": true}
#| export quantization.layers
class QuantizedLinear(QuantizedLayer):
    """A Linear layer whose weight is stored as per-output-channel int8: `y ~= x W^T + b`."""

    def __init__(self, qweight: QuantizedTensor, bias: np.ndarray | None = None) -> None:
        if isinstance(qweight, QuantizedTensor) and len(qweight.shape) != 2:
            raise ValueError(f"QuantizedLinear needs a 2-D weight (out, in), got shape {qweight.shape}")
        super().__init__(qweight, bias)
        self.out_features, self.in_features = qweight.shape

    @classmethod
    def from_float(cls, linear: Linear) -> QuantizedLinear:
        """A QuantizedLinear holding `linear`'s weight as int8 (per output unit) and a copy of its bias."""
        check_instance("linear", linear, Linear, "a Linear")
        return cls(quantize_int8(linear.weight, axis=0), None if linear.bias is None else linear.bias.data)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, int8")

    def _check(self, x: np.ndarray) -> None:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"QuantizedLinear({self.in_features}, {self.out_features}) needs input of "
                             f"shape (..., {self.in_features}), got {x.shape}")

    def forward_dequantized(self, x: np.ndarray) -> np.ndarray:
        """Path A: `x @ W_hat^T + b` with `W_hat` dequantized for this call only. Task 15.5."""
        self._check(x)
        ### BEGIN SOLUTION
        out = x @ self.qweight.dequantize().T
        if self.bias is not None:
            out += self.bias
        return out
        ### END SOLUTION

    def forward_integer(self, x: np.ndarray) -> np.ndarray:
        """Path B: quantize `x` with the calibrated scale, integer matmul, rescale, add the bias."""
        self._check(x)
        xq = self._input_int8(x).reshape(-1, self.in_features)
        out = quantized_matmul(xq, self.input_scale, self.qweight)
        if self.bias is not None:
            out += self.bias
        return out.reshape(x.shape[:-1] + (self.out_features,))

# %% [markdown]
# The convolution reuses Module 09's machinery instead of a second implementation:
# path A calls `conv2d` with the dequantized filters; path B quantizes the input image,
# lays its receptive fields out with `im2col` (which works on int8 arrays as well as
# floats, and pads with the integer 0 that stands for 0.0), and hands the columns to
# `quantized_matmul`, where each filter is one row.

# %% nbgrader={"grade": false, "grade_id": "quantized-conv2d", "solution": true}
#| export quantization.layers
class QuantizedConv2d(QuantizedLayer):
    """A Conv2d whose filters are stored as per-filter int8; stride and padding as in the float layer."""

    def __init__(self, qweight: QuantizedTensor, bias: np.ndarray | None = None,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> None:
        if isinstance(qweight, QuantizedTensor) and len(qweight.shape) != 4:
            raise ValueError(f"QuantizedConv2d needs a 4-D weight (out, in, kh, kw), got shape {qweight.shape}")
        super().__init__(qweight, bias)
        self.out_channels, self.in_channels, kh, kw = qweight.shape
        self.kernel_size = (kh, kw)
        self.stride = check_pair("stride", stride, 1)
        self.padding = check_pair("padding", padding, 0)

    @classmethod
    def from_float(cls, conv: Conv2d) -> QuantizedConv2d:
        """A QuantizedConv2d holding `conv`'s filters as int8 (one scale per filter)."""
        check_instance("conv", conv, Conv2d, "a Conv2d")
        bias = None if conv.bias is None else conv.bias.data
        return cls(quantize_int8(conv.weight, axis=0), bias, conv.stride, conv.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, int8")

    def forward_dequantized(self, x: np.ndarray) -> np.ndarray:
        """Path A: Module 09's `conv2d` with the dequantized filters. Task 15.6."""
        ### BEGIN SOLUTION
        bias = None if self.bias is None else Tensor(self.bias)
        with no_grad():
            return conv2d(Tensor(x), Tensor(self.qweight.dequantize()), bias, self.stride, self.padding).data
        ### END SOLUTION

    def forward_integer(self, x: np.ndarray) -> np.ndarray:
        """Path B: int8 image -> `im2col` -> `quantized_matmul` -> `(N, out, OH, OW)`."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"QuantizedConv2d expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        oh, ow = conv_output_size("QuantizedConv2d", x.shape, self.kernel_size, self.stride, self.padding)
        cols = im2col(self._input_int8(x), self.kernel_size, self.stride, self.padding)  # (K, OH*OW*N)
        out = quantized_matmul(np.ascontiguousarray(cols.T), self.input_scale, self.qweight)
        if self.bias is not None:
            out += self.bias
        return out.T.reshape(self.out_channels, oh, ow, x.shape[0]).transpose(3, 0, 1, 2)

# %% nbgrader={"grade": true, "grade_id": "test-quantized-conv2d", "locked": true, "points": 3}
def test_unit_quantized_layers():
    """Task 15.5, Task 15.6"""
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(2)
    linear, conv = Linear(20, 7), Conv2d(3, 4, 3, stride=2, padding=1)
    x_lin = rng.normal(size=(5, 20)).astype(np.float32)
    x_img = rng.normal(size=(2, 3, 9, 9)).astype(np.float32)
    for layer, x, cls in ((linear, x_lin, QuantizedLinear), (conv, x_img, QuantizedConv2d)):
        q = cls.from_float(layer)
        assert q.qweight.values.dtype == np.int8 and q.qweight.shape == layer.weight.shape
        ref = layer(Tensor(x)).data
        # |x . (w - w_hat)| <= sum |x| * step / 2: the same layer applied to |x| with weights step/2
        step = q.qweight.scale.reshape((-1,) + (1,) * (layer.weight.data.ndim - 1))
        half = np.broadcast_to(step / 2, layer.weight.shape).astype(np.float32)
        bound = (np.abs(x) @ half.T if cls is QuantizedLinear
                 else conv2d(Tensor(np.abs(x)), Tensor(half), None, conv.stride, conv.padding).data)
        out = q(Tensor(x)).data
        assert out.shape == ref.shape and np.all(np.abs(out - ref) <= bound + 1e-5)
        q.input_scale = np.float32(np.abs(x).max() / 127)           # as calibrate() would
        assert np.allclose(q(x).data, ref, atol=0.05)
    print("QuantizedLinear, QuantizedConv2d: OK")

# %% [markdown]
# ### Calibration
#
# `calibrate` runs batches through a quantized model in evaluation mode and lets every
# quantized layer record the largest `|input|` it sees. The scale is then
# `max|x| / 127`: the observed range uses all the levels, and an input beyond it later
# saturates instead of wrapping around. (The maximum is the simplest choice; a
# percentile ignores rare outliers and gives finer steps to everything else.)

# %% nbgrader={"grade": false, "grade_id": "calibrate", "solution": true}
#| export quantization.convert
def _inputs(batches: Iterable | Tensor | np.ndarray) -> Iterable:
    """The model inputs in `batches` (a single array, or an iterable of arrays or `(x, y, ...)` tuples), each
    checked finite: one NaN would make a scale NaN, one inf a scale of inf."""
    items = [batches] if isinstance(batches, (Tensor, np.ndarray)) else (
        b[0] if isinstance(b, (tuple, list)) else b for b in batches)
    for i, x in enumerate(items):
        check_finite(f"calibration batch {i}", x, float32=True)
        yield x


def calibrate(model: Module, batches: Iterable | Tensor | np.ndarray) -> Module:
    """Set each quantized layer's input scale to `max|input| / 127` over `batches`. Task 15.7.

    The model runs in evaluation mode without gradients (its mode is restored after);
    afterwards its quantized layers use the integer path.

    Args:
        model: a model containing `QuantizedLinear` / `QuantizedConv2d` layers.
        batches: one input array, or an iterable of inputs or of `(x, y)` batches
            (a `DataLoader` works).

    Returns:
        `model`, calibrated in place.

    Raises:
        ValueError: the model has no quantized layer, `batches` is empty, or a batch holds
            NaN or inf (the layers then keep the input scales they had before the call).
    """
    layers = [m for m in model.modules() if isinstance(m, QuantizedLayer)]
    if not layers:
        raise ValueError(f"calibrate: {type(model).__name__} has no quantized layers; "
                         f"convert it with quantize_model(model) first")
    was_training, before = model.training, [layer.input_scale for layer in layers]
    seen = 0
    ### BEGIN SOLUTION
    for layer in layers:
        layer.input_scale = None          # observe through the dequantize path
        layer._observed_max = 0.0
    model.eval()
    try:
        with no_grad():
            for x in _inputs(batches):
                model(x)
                seen += 1
        observed = [layer._observed_max for layer in layers]
    except BaseException:               # a refused batch: every scale back as it was
        for layer, scale in zip(layers, before):
            layer.input_scale = scale
        raise
    finally:
        for layer in layers:
            layer._observed_max = None
        model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate: batches yielded no batch")
    for layer, amax in zip(layers, observed):
        # A layer that only ever saw zeros (or none at all) gets any positive scale.
        layer.input_scale = np.float32(amax / SYMMETRIC_MAX) if amax > 0 else np.float32(1.0)
    ### END SOLUTION
    return model

# %% [markdown]
# ## 4. Whole models
#
# `quantize_model` deep-copies the model (the float original stays usable, and
# unchanged: the comparisons below need it) and then walks the copy the way
# `Module` finds children, through attributes and lists of modules: every `Linear`
# becomes a `QuantizedLinear`, every `Conv2d` a `QuantizedConv2d`, and every other
# module (activations, pooling, `Flatten`, `BatchNorm2d`, `Dropout`, containers) stays
# as it is, with its own children converted. With calibration data, the copy is
# calibrated and runs the integer path.

# %% nbgrader={"grade": false, "grade_id": "quantize-model", "solution": true}
#| export quantization.convert
def quantize_model(model: Module, calibration_data: Iterable | Tensor | np.ndarray | None = None) -> Module:
    """A copy of `model` with every Linear and Conv2d replaced by its int8 version. Task 15.8.

    The input model is not changed. Modules of other kinds pass through (their
    children are converted). The copy is returned in evaluation mode.

    Args:
        model: a float model, e.g. a `Sequential` of Linear/Conv2d/BatchNorm2d/pooling/
            Flatten/activations, or any Module nesting them.
        calibration_data: optional batches for `calibrate`; when given, the quantized
            layers use the integer matmul path.

    Returns:
        The quantized copy.

    Raises:
        TypeError: `model` is not a Module.
    """
    check_instance("model", model, Module, "a tinytorch Module")
    ### BEGIN SOLUTION
    def convert(module: Module) -> Module:
        if isinstance(module, Linear):
            return QuantizedLinear.from_float(module)
        if isinstance(module, Conv2d):
            return QuantizedConv2d.from_float(module)
        for name, value in list(vars(module).items()):
            if isinstance(value, Module):
                vars(module)[name] = convert(value)       # same name, same position
            elif isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
                items = [convert(v) if isinstance(v, Module) else v for v in value]
                vars(module)[name] = type(value)(items) if isinstance(value, list) else tuple(items)
        return module

    qmodel = convert(copy.deepcopy(model))
    ### END SOLUTION
    qmodel.eval()
    if calibration_data is not None:
        calibrate(qmodel, calibration_data)
    return qmodel


# %% nbgrader={"grade": true, "grade_id": "test-quantize-model", "locked": true, "points": 3}
def test_unit_quantize_model():
    """Task 15.7, Task 15.8"""
    from tinytorch.core.layers import ReLU, Sequential
    from tinytorch.core.spatial import Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    model = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    before = model.state_dict()
    x = np.random.default_rng(3).uniform(size=(6, 1, 8, 8)).astype(np.float32)
    q = quantize_model(model, calibration_data=[x])
    assert [type(m).__name__ for m in q] == ["QuantizedConv2d", "ReLU", "MaxPool2d", "Flatten", "QuantizedLinear"]
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model[0], Conv2d) and q[0].input_scale is not None
    ref = model(Tensor(x)).data
    assert np.allclose(q(Tensor(x)).data, ref, atol=0.05)
    layers = [m for m in q.modules() if isinstance(m, QuantizedLayer)]
    assert sum(m.nbytes for m in layers) < sum(t.data.nbytes for t in model.parameters()) / 3
    print("quantize_model, calibrate: OK")

# %% [markdown]
# ## 5. On the digits: memory, error, accuracy, speed
#
# Now the real thing: train the course's small MLP and small CNN on the digits (one call
# each to Module 09's given recipe, which runs Module 07's `fit`), quantize them, and
# measure. Everything printed below is measured by this cell; run it and compare with
# your own numbers.

# %%
from tinytorch.core.training import evaluate
from tinytorch.profiling import model_size_bytes
from tinytorch.recipes import DigitsRecipe, digits_cnn, digits_mlp

# The course's digits networks and recipe (Module 09's given `tinytorch.recipes`) with the
# optimizers of benchmarks/bench_digits_train.py, first phase only and shortened, so this runs in seconds.
_MLP_RECIPE = DigitsRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=20, batch_size=32)
_CNN_RECIPE = DigitsRecipe(optimizer="adam", lr=3e-3, epochs=10, batch_size=32)
_mlp, _, _mlp_train, _mlp_test, _ = _MLP_RECIPE.fit(digits_mlp(seed=0))
_cnn, _, _cnn_train, _cnn_test, _ = _CNN_RECIPE.fit(digits_cnn(seed=0))

# %% [markdown]
# **Accuracy and bytes.** `int8 (A)` is the uncalibrated copy (dequantize path); `int8
# (B)` is calibrated on the training images and runs integer matmuls. The weights shrink
# by exactly 4x; the whole model a little less, because the biases stay float32 and
# every output channel adds a float32 scale and an int32 zero point.

# %%
print(f"{'model':5s} {'float32':>8s} {'int8 (A)':>9s} {'int8 (B)':>9s} {'bytes fp32':>11s} {'bytes int8':>11s}  weights fp32 -> int8")
for _name, _model, _train, _test in (("MLP", _mlp, _mlp_train, _mlp_test), ("CNN", _cnn, _cnn_train, _cnn_test)):
    _qa = quantize_model(_model)
    _qb = quantize_model(_model, calibration_data=_train)
    _w32 = sum(m.weight.data.nbytes for m in _model.modules() if isinstance(m, (Linear, Conv2d)))
    _w8 = sum(m.qweight.values.nbytes for m in _qa.modules() if isinstance(m, QuantizedLayer))
    print(f"{_name:5s} {evaluate(_model, _test):8.2%} {evaluate(_qa, _test):9.2%} {evaluate(_qb, _test):9.2%} "
          f"{model_size_bytes(_model):11d} {model_size_bytes(_qa):11d}  {_w32} -> {_w8} B ({_w32 / _w8:.0f}x)")

# %% [markdown]
# **Per-tensor against per-channel, on a trained layer.** The rows of a trained weight
# have different sizes; with one scale for the whole tensor, the step is set by the
# largest row and the small rows are quantized coarsely. Mean error, relative to the
# mean `|w|`, for every weight layer of both models:

# %%
print(f"{'layer':22s} {'max|w| per row':>16s} {'per tensor':>11s} {'per channel':>12s}  ratio")
for _model_name, _model in (("MLP", _mlp), ("CNN", _cnn)):
    for _i, _layer in ((i, m) for i, m in enumerate(_model) if isinstance(m, (Linear, Conv2d))):
        _w = _layer.weight.data
        _rows = np.abs(_w).reshape(len(_w), -1).max(axis=1)
        _errs = [np.abs(quantize_int8(_w, axis=a).dequantize() - _w).mean() / np.abs(_w).mean() for a in (None, 0)]
        print(f"{_model_name}[{_i}] {type(_layer).__name__:14s} {_rows.min():6.3f} - {_rows.max():6.3f} "
              f"{_errs[0]:11.2e} {_errs[1]:12.2e}  {_errs[0] / _errs[1]:4.1f}x")

# %% [markdown]
# **Error and accuracy against bits**, on the trained MLP: every weight rounded to
# `bits` bits per channel (the `_symmetric_round_trip` of Section 2, row by row),
# then the test accuracy. Where does the accuracy start to fall, and how much room
# does that leave below 8 bits?

# %%
print(" bits  mean |error| / mean |w|   test accuracy")
for _bits in (2, 3, 4, 5, 6, 8):
    _m = copy.deepcopy(_mlp)
    _rel = []
    for _layer in (m for m in _m.modules() if isinstance(m, Linear)):
        _w = _layer.weight.data
        _layer.weight.data = np.stack([_symmetric_round_trip(row, _bits) for row in _w]).astype(np.float32)
        _rel.append(np.abs(_layer.weight.data - _w).mean() / np.abs(_w).mean())
    print(f"{_bits:5d}  {np.mean(_rel):22.2e}   {evaluate(_m, _mlp_test):13.2%}")

# %% [markdown]
# **Which path is faster here?** NumPy multiplies float32 matrices with an optimised
# BLAS, but it has no int8 or int32 matrix kernel: an integer `@` falls back to a plain
# loop. So on this machine path A (dequantize, then a float32 BLAS matmul) should win,
# and by a lot; int8 hardware (and PyTorch's int8 kernels) reverse that. Timings come
# from Module 14's `time_interleaved`: the three calls in turns, medians over rounds,
# BLAS on one thread (several threads on a shared machine time the machine's load).

# %%
from tinytorch.profiling import time_interleaved

_x_big = np.random.default_rng(0).normal(size=(256, 512)).astype(np.float32)
_cases = [("MLP Linear(64, 128), batch 360", _mlp[0], next(iter(_mlp_test))[0].data),
          ("CNN Conv2d(1, 8, 3), batch 360", _cnn[0], next(iter(_cnn_test))[0].data),
          ("Linear(512, 512), batch 256", Linear(512, 512), _x_big)]
print(f"{'layer':32s} {'float32':>9s} {'A: dequant':>11s} {'B: int32':>10s}   B / A")
for _name, _layer, _x in _cases:
    _q = (QuantizedLinear if isinstance(_layer, Linear) else QuantizedConv2d).from_float(_layer)
    calibrate(_q, [_x])
    _t_float, _t_a, _t_b = time_interleaved(
        [lambda: _layer(Tensor(_x)), lambda: _q.forward_dequantized(_x), lambda: _q.forward_integer(_x)], repeats=15)
    print(f"{_name:32s} {_t_float * 1e6:7.0f}us {_t_a * 1e6:9.0f}us {_t_b * 1e6:8.0f}us   {_t_b / _t_a:5.1f}x")

# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_choose_qparams()
    test_unit_dequantize()
    test_unit_quantize_int8()
    test_unit_quantized_matmul()
    test_unit_quantized_layers()
    test_unit_quantize_model()

# %%
if __name__ == "__main__":
    test_module()
    print("Module 15: all inline tests passed")
