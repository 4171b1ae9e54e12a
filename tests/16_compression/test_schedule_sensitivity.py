"""Tasks 16.5 and 16.7: sensitivity scans and the sparsity schedule."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.compression import magnitude_prune, measure_sparsity, sensitivity_scan, sparsity_report, sparsity_schedule


@pytest.mark.task("16.7")
@given(steps=st.integers(1, 50), final=st.floats(0, 0.99), initial=st.floats(0, 0.99))
def test_schedule_matches_zhu_gupta(steps, final, initial):
    for t in range(steps + 1):
        cubic = sparsity_schedule(t, steps, final, initial)
        assert cubic == pytest.approx(final + (initial - final) * (1 - t / steps) ** 3, abs=1e-12)
        linear = sparsity_schedule(t, steps, final, initial, kind="linear")
        assert linear == pytest.approx(initial + (final - initial) * t / steps, abs=1e-12)
    assert sparsity_schedule(steps, steps, final, initial) == pytest.approx(final, abs=1e-12)
    assert sparsity_schedule(0, steps, final, initial) == pytest.approx(initial, abs=1e-12)


@pytest.mark.parametrize("args, words", [
    ((11, 10, 0.9), r"step must be an int >= 0 and <= 10, got 11"),
    ((1, 0, 0.9), "steps must be an int >= 1, got 0"),
    ((1, 10, 1.2), r"final must be a number in \[0, 1\), got 1.2"),
    ((1.5, 10, 0.9), "step must be an int >= 0"),
])
def test_schedule_errors(args, words):
    with pytest.raises(ValueError, match=words):
        sparsity_schedule(*args)
    with pytest.raises(ValueError, match="kind must be 'cubic' or 'linear', got 'exp'"):
        sparsity_schedule(1, 2, 0.5, kind="exp")


@pytest.mark.task("16.5")
def test_scan_prunes_one_layer_at_a_time_and_restores(cnn):
    before = {n: p.data.copy() for n, p in cnn.named_parameters()}
    seen = []

    def evaluate(model):
        seen.append([r.zeros for r in sparsity_report(model)])
        return -measure_sparsity(model)

    scan = sensitivity_scan(cnn, evaluate, [0.5, 0.8])
    params = [r.params for r in sparsity_report(cnn)]
    assert seen[0] == [0, 0, 0]  # the baseline
    expected = []
    for i in range(3):
        for s in (0.5, 0.8):
            expected.append([round(s * p) if j == i else 0 for j, p in enumerate(params)])
    assert seen[1:] == expected
    assert [(layer, s) for layer, s, _ in scan] == [(l, s) for l in ("0", "4", "9") for s in (0.5, 0.8)]
    for n, p in cnn.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


@pytest.mark.task("16.5")
def test_scan_restores_even_when_evaluate_fails(cnn):
    before = {n: p.data.copy() for n, p in cnn.named_parameters()}
    calls = []

    def evaluate(model):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("evaluation broke")
        return 1.0

    with pytest.raises(RuntimeError, match="evaluation broke"):
        sensitivity_scan(cnn, evaluate, [0.5])
    for n, p in cnn.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


@pytest.mark.task("16.5")
def test_choose_allocates_within_the_drop(mlp):
    def evaluate(model):  # pretend layer "0" is fragile: its sparsity costs accuracy
        return 1.0 - np.mean(model[0].weight.data == 0)

    scan = sensitivity_scan(mlp, evaluate, [0.25, 0.5, 0.9])
    choice = scan.choose(max_drop=0.3)
    assert choice == {"0": 0.25, "2": 0.9, "4": 0.9}
    magnitude_prune(mlp, choice)
    assert [round(r.sparsity, 2) for r in sparsity_report(mlp)] == [0.25, 0.9, 0.9]
    assert "baseline" in str(scan)
