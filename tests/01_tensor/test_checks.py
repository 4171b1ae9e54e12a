"""tinytorch.core.checks: the argument checks every module shares (given code, no task)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.checks import (ArgumentTypeError, check_finite, check_fraction, check_instance, check_int,
                                   check_number, check_pair, check_shape)


@given(st.integers(-10**6, 10**6), st.integers(-100, 100))
def test_check_int_accepts_exactly_the_ints_at_or_above_the_minimum(value, minimum):
    if value >= minimum:
        assert check_int("n", value, minimum) == value
        assert type(check_int("n", np.int64(value), minimum)) is int
    else:
        with pytest.raises(ValueError, match=rf"n must be an int >= {minimum}, got {value}$"):
            check_int("n", value, minimum)


@pytest.mark.parametrize("bad", [True, False, 1.0, "3", None, np.float32(2)])
def test_check_int_refuses_bools_and_non_integers_with_both_error_kinds(bad):
    for kind in (TypeError, ValueError, ArgumentTypeError):
        with pytest.raises(kind, match="^steps must be an int >= 1 and <= 9, got " + re.escape(repr(bad)) + "$"):
            check_int("steps", bad, 1, 9)


def test_check_int_maximum():
    assert check_int("k", 9, maximum=9) == 9
    with pytest.raises(ValueError, match=r"k must be an int <= 9, got 10"):
        check_int("k", 10, maximum=9)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_fraction_is_the_half_open_unit_interval(x):
    if 0.0 <= x < 1.0:
        assert check_fraction("sparsity", x) == x
    else:  # NaN, negatives, 1 and above
        with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), got"):
            check_fraction("sparsity", x)
    if 0.0 <= x <= 1.0:
        assert check_fraction("ratio", x, include_one=True) == x


@pytest.mark.parametrize("low, high, low_open, high_open, text", [
    (0.0, math.inf, True, False, "a number > 0"),
    (0.0, math.inf, False, False, "a number >= 0"),
    (0.0, math.inf, True, True, "a finite number > 0"),
    (-math.inf, 0.0, True, False, "a finite number <= 0"),
    (-math.inf, 5.0, False, True, "a number < 5"),
    (-math.inf, math.inf, False, False, "a number"),
    (0.0, 1.0, False, False, r"a number in \[0, 1\]"),
])
def test_check_number_names_the_allowed_range(low, high, low_open, high_open, text):
    with pytest.raises((ValueError, TypeError), match=rf"^lr must be {text}, got 'x'$"):
        check_number("lr", "x", low, high, low_open, high_open)
    with pytest.raises(ValueError, match=r"got nan"):
        check_number("lr", float("nan"), low, high, low_open, high_open)
    with pytest.raises(ValueError, match=r"\(a hint\)"):
        check_number("lr", True, low, high, low_open, high_open, note=" (a hint)")


def test_check_instance():
    assert check_instance("x", 3, int, "an int") == 3
    with pytest.raises(ArgumentTypeError, match=r"^model must be a tinytorch Module, got str 'abc'$"):
        check_instance("model", "abc", (int, float), "a tinytorch Module")


def test_check_int_allow_none_accepts_none_and_says_so():
    assert check_int("number", None, 1, allow_none=True) is None
    assert check_int("number", np.int32(4), 1, allow_none=True) == 4
    with pytest.raises(ValueError, match=r"^number must be None or an int >= 1, got 0$"):
        check_int("number", 0, 1, allow_none=True)
    with pytest.raises(ArgumentTypeError, match=r"^number must be None or an int >= 1, got True$"):
        check_int("number", True, 1, allow_none=True)
    with pytest.raises(ArgumentTypeError, match=r"^number must be an int >= 1, got None$"):
        check_int("number", None, 1)


@given(st.lists(st.integers(-3, 50), max_size=5), st.booleans())
def test_check_shape_accepts_exactly_the_non_empty_positive_int_sequences(dims, as_list):
    value = list(dims) if as_list else tuple(dims)
    if dims and all(d >= 1 for d in dims):
        shape = check_shape("input_shape", value)
        assert shape == tuple(dims) and type(shape) is tuple and all(type(d) is int for d in shape)
    else:
        with pytest.raises(ValueError, match=r"^input_shape must be a non-empty tuple of positive ints, got "):
            check_shape("input_shape", value)


@pytest.mark.parametrize("bad", [(1, True), (1, 2.0), "18", 8, None, np.zeros((1, 8)), (1, None)])
def test_check_shape_refuses_bools_floats_and_non_sequences_as_type_errors(bad):
    with pytest.raises(ArgumentTypeError, match=r"^input_shape must be a non-empty tuple of positive ints "
                                                 r"\(batch first\), got "):
        check_shape("input_shape", bad, note=" (batch first)")
    assert check_shape("s", (np.int64(2), 3)) == (2, 3)


def test_check_pair_takes_an_int_or_a_pair():
    assert check_pair("stride", 2, 1) == (2, 2)
    assert check_pair("stride", [1, np.int64(3)], 1) == (1, 3)
    assert check_pair("padding", (0, 0), 0) == (0, 0)
    with pytest.raises(ArgumentTypeError, match=r"^kernel_size must be an int or a pair of ints, got \(1, 2, 3\)$"):
        check_pair("kernel_size", (1, 2, 3), 1)
    with pytest.raises(ValueError, match=r"^stride must be an int >= 1, got 0$"):
        check_pair("stride", (1, 0), 1)
    with pytest.raises(ArgumentTypeError, match=r"^stride must be an int >= 1, got True$"):
        check_pair("stride", True, 1)


# ---- check_finite: arrays of real numbers, all finite ----

@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=0, max_size=20))
def test_check_finite_returns_finite_arrays_unconverted(values):
    array = np.array(values, np.float32)
    out = check_finite("x", array, float32=True)
    assert out.dtype == np.float32 and np.array_equal(out, array)
    assert check_finite("n", np.arange(5)).dtype == np.arange(5).dtype  # ints are finite: no conversion


@pytest.mark.parametrize("bad, first, index", [(np.nan, "nan", "[1, 2]"), (np.inf, "inf", "[1, 2]"),
                                               (-np.inf, "-inf", "[1, 2]")])
def test_check_finite_names_the_argument_the_count_and_the_first_bad_value(bad, first, index):
    a = np.zeros((3, 4), np.float64)
    a[1, 2] = bad
    a[2, 0] = np.nan
    with pytest.raises(ValueError, match=re.escape(f"w must be finite (not NaN or inf); 2 of its 12 values are not, the first {first} "
                                                   f"at index {index}")):
        check_finite("w", a)


def test_check_finite_with_float32_refuses_what_float32_cannot_hold():
    big = np.array([1.0, 1e300], np.float64)
    assert check_finite("x", big) is not None  # finite in float64
    with pytest.raises(ValueError, match=re.escape("x must be finite (not NaN or inf) and within float32's range (|x| <= 3.4e38); "
                                                   "1 of its 2 values are not, the first 1e+300 at index [1]")):
        check_finite("x", big, float32=True)
    edge = np.array([np.finfo(np.float32).max], np.float64)
    assert check_finite("x", edge, float32=True)[0] == edge[0]
    with pytest.raises(ValueError, match=r"the first nan at index \[\]"):
        check_finite("x", np.float64("nan"))


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array([True, False]), np.array(["1.0"]), None,
                                 np.array([None, 1.0], dtype=object), [[1.0], [1.0, 2.0]]])
def test_check_finite_refuses_what_is_not_real_numbers_as_a_type_error(bad):
    with pytest.raises(ArgumentTypeError, match=r"v must hold real numbers \(int or float\), got dtype"):
        check_finite("v", bad)


def test_check_finite_reads_a_tensor_through_its_data():
    from tinytorch.core.tensor import Tensor

    with pytest.raises(ValueError, match=r"t must be finite \(not NaN or inf\); 1 of its 2 values"):
        check_finite("t", Tensor(np.array([0.0, np.inf], np.float32)))


def test_an_open_end_at_infinity_refuses_infinity():
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got inf$"):
        check_number("lr", math.inf, 0.0, math.inf, low_open=True, high_open=True)
    assert check_number("lr", 1e308, 0.0, math.inf, low_open=True, high_open=True) == 1e308
