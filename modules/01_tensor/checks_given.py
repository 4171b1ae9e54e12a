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
# # Given code: checking arguments
#
# Every public function of TinyTorch checks what it is given before it changes anything,
# and says what was wrong in one sentence: the argument's name, the value given, and
# what is allowed (`sparsity must be a number in [0, 1), got 1.5`). The same few checks
# come back in every module, so they live here, once. This file holds no task: read it
# if you like, and use it in your own code.
#
# Two traps it handles for you:
# - `True` is an `int` in Python (`isinstance(True, int)` holds), so a flag passed by
#   mistake where a count belongs would be taken as 1. Every check below refuses bools.
# - NaN fails every comparison, so `not low <= x <= high` is the way to write a range
#   test that refuses NaN too.
#
# A value of the wrong type raises `ArgumentTypeError`, which is both a `TypeError` and a
# `ValueError`: code that catches either one keeps working. A value of the right type
# but out of range raises `ValueError`.

# %%
#| default_exp core.checks

# %%
#| export
from __future__ import annotations
"""Argument checks every module shares: ints, numbers, fractions, shapes, types and finite arrays, refusing bools and NaN and naming the value (given code)."""

import math
import numbers

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (also a ValueError, so either `except` catches it)."""


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> int | None:
    """`value` as an int, after checking it is an integer (not a bool) within the bounds given.

    With `allow_none`, None is accepted too and returned as it is (an optional count).

    Raises:
        ArgumentTypeError: not an integer, or a bool (or None without `allow_none`).
        ValueError: below `minimum` or above `maximum`.
    """
    if value is None and allow_none:
        return None
    bounds = " and ".join(s for s in (f">= {minimum}" if minimum is not None else "",
                                      f"<= {maximum}" if maximum is not None else "") if s)
    allowed = ("None or " if allow_none else "") + f"an int {bounds}".rstrip()
    if not _is_int(value):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False, note: str = "") -> float:
    """`value` as a float, after checking it is a real number (not a bool, not NaN) in the range.

    The range is [low, high] by default; `low_open`/`high_open` exclude an end. `note`
    is added to the message (a hint such as what PyTorch would accept instead).

    Raises:
        ArgumentTypeError: not a real number, or a bool.
        ValueError: NaN, or outside the range.
    """
    if high == math.inf and low > -math.inf:  # an open end at infinity refuses inf: "a finite number"
        allowed = f"a {'finite ' if high_open else ''}number {'>' if low_open else '>='} {low:g}"
    elif low == -math.inf and high < math.inf:
        allowed = f"a {'finite ' if low_open else ''}number {'<' if high_open else '<='} {high:g}"
    elif (low, high) == (-math.inf, math.inf):
        allowed = "a number"
    else:
        allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    allowed += note
    if not _is_real(value):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r}")
    x = float(value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (above and below):  # NOTE: NaN fails both comparisons, so it is refused here
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return x


def check_fraction(name: str, value: object, include_one: bool = False) -> float:
    """`value` as a float in [0, 1), or [0, 1] with `include_one`: a sparsity, a ratio, a probability."""
    return check_number(name, value, 0.0, 1.0, high_open=not include_one)


def check_instance(name: str, value: object, kind: type | tuple[type, ...], what: str) -> object:
    """`value` itself, after checking it is an instance of `kind` (described as `what` in the message).

    Raises:
        ArgumentTypeError: `value` is not a `kind`.
    """
    if not isinstance(value, kind):
        raise ArgumentTypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.80}")
    return value


def check_pair(name: str, value: object, minimum: int | None = None) -> tuple[int, int]:
    """`(h, w)` from an int (used for both) or a pair of ints, each checked like `check_int`.

    Raises:
        ArgumentTypeError: not an int or a pair of ints.
        ValueError: an entry below `minimum`.
    """
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ArgumentTypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return check_int(name, items[0], minimum), check_int(name, items[1], minimum)


def check_shape(name: str, value: object, note: str = "") -> tuple[int, ...]:
    """`value` as a tuple of ints, after checking it is a non-empty tuple or list of ints >= 1 (no bools).

    `note` is added to the message (what the shape means, an example).

    Raises:
        ArgumentTypeError: not a tuple or list, or an entry that is not an int.
        ValueError: empty, or an entry below 1.
    """
    allowed = f"a non-empty tuple of positive ints{note}"
    if not isinstance(value, (tuple, list)) or not all(_is_int(d) for d in value):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r}")
    if not value or not all(d >= 1 for d in value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return tuple(int(d) for d in value)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(name: str, value: object, float32: bool = False) -> np.ndarray:
    """`value` as an ndarray, after checking it holds real numbers that are all finite.

    With `float32`, every value must also fit float32 (|x| <= 3.4e38): a float64 1e300
    would become inf when stored as float32. Nothing is converted: the array returned
    has `value`'s dtype (a Tensor is read through its `.data`).

    Raises:
        ArgumentTypeError: not numbers (complex, bools, strings, objects, None).
        ValueError: a NaN or infinite value (or one beyond float32's range), the first named by its index.
    """
    data = value.data if isinstance(getattr(value, "data", None), np.ndarray) else value
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):  # ragged nested lists
        array = np.asarray(None)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ArgumentTypeError(f"{name} must hold real numbers (int or float), got dtype {array.dtype} "
                                f"({type(value).__name__} {value!r:.60})")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if float32 and array.dtype.itemsize > 4:  # float16 and float32 always fit
            bad |= ~(np.abs(array) <= FLOAT32_MAX)
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), array.shape) if array.ndim else ()
            allowed = "finite (not NaN or inf)" + (" and within float32's range (|x| <= 3.4e38)" if float32 else "")
            raise ValueError(f"{name} must be {allowed}; {int(bad.sum())} of its {array.size} values are not, "
                             f"the first {float(array[where])!r} at index {[int(i) for i in where]}")
    return array
