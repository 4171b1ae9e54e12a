"""Task 19.1: latency_stats against an explicit linear-interpolation percentile."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.benchmarking import LatencyStats, latency_stats

timings = st.lists(st.floats(min_value=0.0, max_value=10.0, allow_nan=False), min_size=1, max_size=60)


def percentile(values, p):
    """The p-th percentile by linear interpolation between order statistics (NumPy's default)."""
    x = sorted(values)
    h = (len(x) - 1) * p / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


@pytest.mark.task("19.1")
def test_hand_computed_quartiles():
    stats = latency_stats([0.4, 0.1, 0.3, 0.2, 0.5])
    assert isinstance(stats, LatencyStats)
    assert stats.median == pytest.approx(0.3, abs=1e-15)
    assert (stats.q1, stats.q3) == (pytest.approx(0.2, abs=1e-15), pytest.approx(0.4, abs=1e-15))
    assert stats.mean == pytest.approx(0.3) and stats.best == 0.1
    assert stats.iqr == pytest.approx(0.2)


@pytest.mark.task("19.1")
@given(timings)
def test_matches_interpolated_percentiles(times):
    stats = latency_stats(times)
    for got, p in ((stats.q1, 25), (stats.median, 50), (stats.q3, 75)):
        assert got == pytest.approx(percentile(times, p), rel=1e-12, abs=1e-12)
    assert stats.mean == pytest.approx(math.fsum(times) / len(times), rel=1e-12, abs=1e-12)
    assert stats.best == min(times)
    assert stats.best <= stats.q1 <= stats.median <= stats.q3
    assert all(type(v) is float for v in (stats.median, stats.q1, stats.q3, stats.mean, stats.best))


@pytest.mark.task("19.1")
@given(timings, st.data())
def test_order_does_not_matter(times, data):
    a, b = latency_stats(times), latency_stats(data.draw(st.permutations(times)))
    assert (a.median, a.q1, a.q3, a.best) == (b.median, b.q1, b.q3, b.best)
    assert a.mean == pytest.approx(b.mean, rel=1e-12)  # summation order may change the last bit


@pytest.mark.task("19.1")
def test_median_ignores_a_few_outliers_the_mean_does_not():
    calm = [0.010] * 20
    noisy = [0.010] * 18 + [0.5, 0.9]  # two calls hit by a busy neighbour
    assert latency_stats(noisy).median == latency_stats(calm).median == 0.010
    assert latency_stats(noisy).iqr == 0.0
    assert latency_stats(noisy).mean > 7 * latency_stats(calm).mean


@pytest.mark.task("19.1")
def test_accepts_arrays_of_any_shape():
    assert latency_stats(np.array([[1.0, 2.0], [3.0, 4.0]])).median == 2.5


@pytest.mark.parametrize("bad", [[], [1.0, -0.5], [float("nan")], [float("inf"), 1.0]])
def test_rejects_empty_negative_and_non_finite(bad):
    with pytest.raises(ValueError, match="times"):
        latency_stats(bad)
