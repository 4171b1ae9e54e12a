"""Tasks 19.2 and 19.3: interleaved timing (on a fake clock) and paired speed-ups."""
import gc

import numpy as np
import pytest

from tinytorch.benchmarking import interleaved_latency, paired_speedup
from tinytorch.core.layers import Module

from .conftest import Costly, make_mlp

X = np.zeros((4, 3), np.float32)


@pytest.mark.task("19.2")
def test_each_call_timed_exactly(clock):
    log = []
    models = {"a": Costly("a", clock, 0.003, log), "b": Costly("b", clock, 0.001, log)}
    times = interleaved_latency(models, X, repeats=6, warmup=2, timer=clock)
    assert list(times) == ["a", "b"]
    np.testing.assert_allclose(times["a"], 0.003, rtol=0, atol=1e-15)
    np.testing.assert_allclose(times["b"], 0.001, rtol=0, atol=1e-15)
    assert times["a"].shape == times["b"].shape == (6,)
    assert len(log) == 2 * 8 and all(rows == 4 for *_, rows in log)


@pytest.mark.task("19.2")
def test_rounds_rotate_the_order_so_each_model_takes_each_position(clock):
    log = []
    names = ["a", "b", "c"]
    models = {n: Costly(n, clock, 1.0, log) for n in names}
    interleaved_latency(models, X, repeats=3, warmup=3, timer=clock)
    calls = [entry[0] for entry in log]
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]] * 2
    # Across any 3 consecutive rounds every model holds every position once.
    for position in range(3):
        assert sorted(r[position] for r in rounds[:3]) == names


@pytest.mark.task("19.2")
def test_warmup_calls_are_not_recorded_and_entries_follow_rounds(clock):
    log = []
    # The first call is slow (cold), then each round is cheaper than the last.
    cold = Costly("cold", clock, [5.0, 1.0, 0.9, 0.8, 0.7], log)
    warm = Costly("warm", clock, 0.5, log)
    times = interleaved_latency({"cold": cold, "warm": warm}, X, repeats=3, warmup=1, timer=clock)
    np.testing.assert_allclose(times["cold"], [1.0, 0.9, 0.8])
    cold2 = Costly("cold", clock, [5.0, 1.0], [])
    assert interleaved_latency({"cold": cold2}, X, repeats=2, warmup=0, timer=clock)["cold"][0] == 5.0


@pytest.mark.task("19.2")
def test_eval_mode_no_grad_gc_off_while_timing_and_everything_restored(clock):
    seen = []

    class Probe(Module):
        def forward(self, x):
            from tinytorch.core.autograd import is_grad_enabled

            seen.append((self.training, is_grad_enabled(), gc.isenabled()))
            return x

    a, b = Probe(), Probe()
    b.eval()
    assert gc.isenabled()
    interleaved_latency({"a": a, "b": b}, X, repeats=2, warmup=1, timer=clock)
    assert seen and all(state == (False, False, False) for state in seen)
    assert a.training and not b.training and gc.isenabled()


@pytest.mark.task("19.2")
def test_modes_and_gc_restored_when_a_model_fails(clock):
    class Broken(Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = make_mlp((3, 4, 2))
    with pytest.raises(RuntimeError, match="boom"):
        interleaved_latency({"ok": model, "broken": Broken()}, X, repeats=2, timer=clock)
    assert model.training and gc.isenabled()


@pytest.mark.task("19.2")
def test_real_models_get_positive_times():
    times = interleaved_latency({"mlp": make_mlp((3, 8, 2))}, X, repeats=3, warmup=1)
    assert times["mlp"].shape == (3,) and np.all(times["mlp"] > 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"repeats": 0}, "repeats must be an int >= 1, got 0"),
    ({"repeats": True}, "repeats"),
    ({"repeats": 2.5}, "repeats"),
    ({"warmup": -1}, "warmup must be an int >= 0, got -1"),
])
def test_bad_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        interleaved_latency({"m": make_mlp((3, 2))}, X, **kwargs)


def test_bad_models():
    with pytest.raises(ValueError, match="at least one model"):
        interleaved_latency({}, X)
    with pytest.raises(TypeError, match=r"models\['f'\] must be a tinytorch Module, got function"):
        interleaved_latency({"f": lambda x: x}, X)


@pytest.mark.task("19.3")
def test_speedup_is_the_median_of_round_ratios():
    # Ratios per round: 2, 4, 3 -> median 3 (the ratio of medians would be 2/0.5... = 3.0 too;
    # the next case tells them apart).
    assert paired_speedup([2.0, 4.0, 3.0], [1.0, 1.0, 1.0]) == 3.0
    # Ratios 1, 1, 4: median 1. Ratio of medians: 2 / 1 = 2.
    assert paired_speedup([1.0, 2.0, 8.0], [1.0, 2.0, 2.0]) == 1.0
    assert type(paired_speedup([1.0], [0.5])) is float


@pytest.mark.task("19.3")
def test_a_slow_round_shared_by_both_models_cancels():
    ref = np.full(9, 0.030)
    new = np.full(9, 0.010)
    ref[[2, 5, 7]] *= 10  # a neighbour slowed three whole rounds...
    new[[2, 5, 7]] *= 10  # ...for both models
    assert paired_speedup(ref, new) == pytest.approx(3.0)


def test_speedup_errors():
    with pytest.raises(ValueError, match="same rounds"):
        paired_speedup([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same rounds"):
        paired_speedup([], [])
    with pytest.raises(ValueError, match=r"reference timings must be > 0 seconds.*got \[0\.\]"):
        paired_speedup([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"candidate timings must be > 0 seconds.*got \[-1\.\]"):
        paired_speedup([1.0, 1.0], [-1.0, 1.0])
