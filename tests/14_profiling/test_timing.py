"""The one timer: interleaved rounds, one BLAS thread, spread per function, implausible results flagged.

A fake clock that only moves when a timed function runs makes every figure exact, so
these tests check the bookkeeping and the flags without timing anything for real.
"""
import gc

import numpy as np
import pytest

from tinytorch.profiling import (NOISY_SPREAD, Speedup, Timing, compare_timings, format_seconds, time_interleaved,
                                 time_rounds)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def costly(clock, costs, log=None, name=None):
    """A function that advances `clock` by the next of `costs` (cycling) each call."""
    state = {"i": 0}

    def fn():
        clock.now += costs[state["i"] % len(costs)]
        state["i"] += 1
        if log is not None:
            log.append(name)
    return fn


def test_rounds_rotate_and_warmup_rounds_are_untimed():
    clock, log = FakeClock(), []
    fns = [costly(clock, [0.003], log, "a"), costly(clock, [0.001], log, "b")]
    a, b = time_rounds(fns, repeats=4, warmup=1, clock=clock, number=1)
    assert a.rounds == pytest.approx((0.003,) * 4) and b.rounds == pytest.approx((0.001,) * 4)
    assert log == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]  # round r starts at function r % 2


def test_min_time_chooses_the_calls_per_timing():
    clock = FakeClock()
    (t,) = time_rounds([costly(clock, [0.001])], repeats=3, warmup=0, min_time=0.0045, clock=clock)
    assert t.rounds == pytest.approx((0.001,) * 3)  # 5 calls per timing, divided back out


def test_setup_runs_off_the_clock_before_every_call_and_hands_over_its_result():
    """A setup that costs a whole second must not show in rounds of 2 ms calls."""
    clock, made, got = FakeClock(), [], []

    def setup():
        clock.now += 1.0
        made.append(object())
        return made[-1]

    def prune(model):
        got.append(model)
        clock.now += 0.002

    (t,) = time_rounds([prune], repeats=3, warmup=1, number=2, clock=clock, setup=setup)
    assert t.rounds == pytest.approx((0.002,) * 3)
    assert len(made) == 1 + 3 * 2  # one warm-up call, then 2 calls in each of 3 rounds
    assert got == made  # each call got the object its own setup made, in order


def test_setups_per_function_and_min_time_counts_only_the_calls():
    clock, log = FakeClock(), []

    def setup():
        clock.now += 0.5
        log.append("setup")
        return "fresh"

    def consume(arg):
        assert arg == "fresh"
        clock.now += 0.001
        log.append("a")

    plain = costly(clock, [0.003], log, "b")
    a, b = time_rounds([consume, plain], repeats=2, warmup=0, min_time=0.0045, clock=clock, setup=[setup, None])
    assert a.rounds == pytest.approx((0.001,) * 2) and b.rounds == pytest.approx((0.003,) * 2)
    # counting: 5 calls of a (each after its setup) reach 4.5 ms, 2 of b; then round 0 a-first, round 1 b-first
    assert log == ["setup", "a"] * 5 + ["b"] * 2 + ["setup", "a"] * 5 + ["b"] * 2 + ["b"] * 2 + ["setup", "a"] * 5


def test_setup_with_a_real_clock_leaves_the_busy_wait_out():
    import time

    def busy(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    (t,) = time_rounds([lambda s: busy(s)], repeats=3, warmup=0, number=1, setup=lambda: busy(0.1) or 0.002)
    assert 0.002 <= t.min and t.median < 0.05  # the 100 ms setup is not in the 2 ms call's time


def test_timing_reports_min_median_and_spread():
    t = Timing((0.010, 0.012, 0.011, 0.030, 0.010))
    assert (t.min, t.median) == (0.010, 0.011)
    assert t.spread == pytest.approx((0.030 - 0.010) / 0.011)
    assert not t.steady and Timing((1.0, 1.1, 1.2)).steady
    assert str(Timing((0.002, 0.002, 0.003))) == "2 ms (min 2 ms, spread 50%)"
    assert format_seconds(4.56e-5) == "45.6 us" and format_seconds(2.1) == "2.1 s"


def test_a_speedup_within_its_work_ratio_is_plausible():
    clock = FakeClock()
    before, after = time_rounds([costly(clock, [0.004]), costly(clock, [0.001])], repeats=5, clock=clock,
                                number=1)
    speedup = compare_timings(before, after, work_ratio=4.0)
    assert speedup.ratio == pytest.approx(4.0) and speedup.plausible and speedup.flags == ()
    assert str(speedup) == "4.00x (rounds 4.00-4.00x)"


def test_a_speedup_beyond_its_work_ratio_is_flagged():
    """The fake pair is 4x apart in time but does only 2x less work: flagged."""
    clock = FakeClock()
    before, after = time_rounds([costly(clock, [0.004]), costly(clock, [0.001])], repeats=5, clock=clock,
                                number=1)
    speedup = compare_timings(before, after, work_ratio=2.0)
    assert not speedup.plausible
    assert speedup.flags == ("4.00x faster for 2.00x less work: check the measurement",)
    assert "[!] 4.00x faster for 2.00x less work" in str(speedup)
    # within the margin (4 <= 2.9 * 1.5) it passes; a tighter margin flags it again
    assert compare_timings(before, after, work_ratio=2.9).plausible
    assert not compare_timings(before, after, work_ratio=2.9, margin=1.2).plausible


def test_rounds_that_disagree_are_flagged():
    clock = FakeClock()
    before, after = time_rounds([costly(clock, [0.004, 0.004, 0.012]), costly(clock, [0.002])], repeats=6,
                                clock=clock, number=1, warmup=0)
    assert before.spread > NOISY_SPREAD
    speedup = compare_timings(before, after, work_ratio=10.0)
    assert not speedup.plausible and speedup.flags[0].startswith("rounds disagree (spread before 200%")
    assert speedup.low == pytest.approx(2.0) and speedup.high == pytest.approx(6.0)


def test_one_blas_thread_and_no_garbage_collection_while_timing():
    from threadpoolctl import threadpool_info

    seen = []

    def probe():
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        seen.append((blas, gc.isenabled()))

    was = gc.isenabled()
    time_rounds([probe], repeats=2, warmup=0, number=1)
    assert seen and all(threads and set(threads) == {1} and not collecting for threads, collecting in seen)
    assert gc.isenabled() == was


def test_time_interleaved_keeps_its_call_and_return_type():
    clock = FakeClock()
    medians = time_interleaved([costly(clock, [0.002]), costly(clock, [0.001])], repeats=3, clock=clock)
    assert isinstance(medians, list) and medians == pytest.approx([0.002, 0.001])
    (busy,) = time_interleaved([lambda: np.ones(1000).sum()], repeats=2, clock="cpu")
    assert 0 < busy < 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        time_rounds([lambda: None], repeats=0)
    with pytest.raises(ValueError, match="number must be None or an int >= 1, got 0"):
        time_rounds([lambda: None], number=0)
    with pytest.raises(TypeError, match="threads must be None or an int >= 1, got True"):
        time_rounds([lambda: None], threads=True)
    with pytest.raises(ValueError, match=r"min_time must be a number > 0 \(seconds\), got 0"):
        time_rounds([lambda: None], min_time=0)
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu', got 'gpu'"):
        time_rounds([lambda: None], clock="gpu")
    with pytest.raises(ValueError, match="setup must be None, a callable or a sequence of 2 callables"):
        time_rounds([lambda: None, lambda: None], setup=[lambda: None])
    with pytest.raises(ValueError, match="setup must be None, a callable or a sequence of 1 callables"):
        time_rounds([lambda x: None], setup=42)
    t = Timing((1.0, 1.0))
    with pytest.raises(ValueError, match="same rounds, got 2 and 1"):
        compare_timings(t, Timing((1.0,)))
    with pytest.raises(ValueError, match="work_ratio must be a number > 0 or None, got 0"):
        compare_timings(t, t, work_ratio=0)
    with pytest.raises(ValueError, match="margin must be a number > 1, got 1"):
        compare_timings(t, t, margin=1)
    assert isinstance(compare_timings(t, t), Speedup)
