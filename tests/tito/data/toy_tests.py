"""pytest suite of the toy module (copied to tests/90_toy/test_toy.py in a temporary project)."""
import numpy as np
import pytest

from tinytorch.toy import Counter, double


@pytest.mark.task("90.1")
def test_double_matches_numpy(rng):
    x = rng.normal(size=(3, 4))
    np.testing.assert_array_equal(double(x), x * 2)


@pytest.mark.task("90.2")
def test_tick_counts_calls():
    c = Counter()
    assert [c.tick() for _ in range(3)] == [1, 2, 3]
