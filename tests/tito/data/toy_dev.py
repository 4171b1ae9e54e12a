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
# # Module 90: Toy
#
# > Two small tasks, so the student workflow can be tried end to end.

# %%
#| default_exp toy

# %%
#| export
from __future__ import annotations

import numpy as np

# %% [markdown]
# ## Doubling

# %% nbgrader={"grade": false, "grade_id": "double", "solution": true}
#| export
def double(x: np.ndarray) -> np.ndarray:
    """Twice `x`, entry by entry. Task 90.1: multiply every entry by two."""
    x = np.asarray(x)
    ### BEGIN SOLUTION
    y = x * 2
    return y
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-double", "locked": true, "points": 1}
def test_unit_double():
    """Task 90.1"""
    out = double(np.array([1.0, -2.5]))
    expected = np.array([2.0, -5.0])
    assert np.array_equal(out, expected)

# %% [markdown]
# ## Counting

# %% nbgrader={"grade": false, "grade_id": "counter", "solution": true}
#| export
class Counter:
    """Counts calls of `tick`."""

    def __init__(self) -> None:
        self.count = 0

    def tick(self) -> int:
        """The number of calls so far, this one included. Task 90.2"""
        ### BEGIN SOLUTION
        self.count += 1
        return self.count
        ### END SOLUTION

# %%
demo = Counter()
demo.tick()

# %% nbgrader={"grade": true, "grade_id": "test-counter", "locked": true, "points": 2}
def test_unit_tick():
    """Task 90.2"""
    c = Counter()
    assert c.tick() == 1
    assert c.tick() == 2

# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_double()
    test_unit_tick()

# %%
if __name__ == "__main__":
    test_module()
    print("Module 90: all inline tests passed")
