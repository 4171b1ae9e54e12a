"""Bad input and odd models: a model that is itself a layer, NaN and inf weights, arguments
checked before anything changes, and None where an object is expected."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.compression import (IterativePruner, Masks, fine_tune, kth_smallest_magnitude, magnitude_prune,
                                   measure_sparsity, prune_and_quantize, sensitivity_scan, smallest_k_masks,
                                   structured_prune)
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.data.loader import DataLoader, TensorDataset

from .conftest import make_mlp


def snapshot(model):
    return {n: p.data.copy() for n, p in model.named_parameters()}


def assert_unchanged(model, before):
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


# ---- the exact-k step with a threshold from the sampled selection (the fast path) ----

@pytest.mark.task("16.2")
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=3), frac=st.floats(0.01, 1), seed=st.integers(0, 99),
       sample=st.sampled_from([4, 16, 64]))
def test_smallest_k_with_a_sampled_threshold_matches_a_stable_sort(sizes, frac, seed, sample):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-4, 5, n).astype(np.float32) for n in sizes]  # many ties
    flat = np.concatenate(arrays)
    k = max(1, int(frac * flat.size))
    threshold = kth_smallest_magnitude(arrays, k, sample=sample)
    kept = np.concatenate([m.ravel() for m in smallest_k_masks(arrays, k, threshold)])
    expected = np.ones(flat.size, bool)
    expected[np.argsort(np.abs(flat), kind="stable")[:k]] = False
    np.testing.assert_array_equal(kept, expected)


@pytest.mark.task("16.3")
def test_a_large_model_takes_the_fast_path_and_stays_exact():
    manual_seed(0)
    model = Sequential(Linear(512, 600), Linear(600, 10))  # 313,200 weights: the sampled threshold
    model[0].weight.data[:, :8] = np.round(model[0].weight.data[:, :8], 2)  # ties
    flat = np.concatenate([model[0].weight.data.ravel(), model[1].weight.data.ravel()])
    masks = magnitude_prune(model, 0.7)
    k = round(0.7 * flat.size)
    expected = np.ones(flat.size, bool)
    expected[np.argsort(np.abs(flat), kind="stable")[:k]] = False
    np.testing.assert_array_equal(np.concatenate([masks["0.weight"].ravel(), masks["1.weight"].ravel()]), expected)


# ---- a model that is itself a layer ----

@pytest.mark.task("16.3")
@pytest.mark.parametrize("make", [lambda: Linear(4, 3), lambda: Conv2d(2, 3, 3)])
def test_a_bare_layer_can_be_pruned(make):
    layer = make()
    masks = magnitude_prune(layer, 0.5)
    n = layer.weight.data.size
    assert set(masks) == {"weight"}
    assert n - np.count_nonzero(layer.weight.data) == round(0.5 * n) and measure_sparsity(layer) == round(0.5 * n) / n
    magnitude_prune(make(), {"": 0.25})
    magnitude_prune(make(), {"weight": 0.25})


@pytest.mark.task("16.10")
def test_a_bare_linear_prunes_quantizes_and_runs():
    layer = Linear(8, 4)
    small = prune_and_quantize(layer, 0.5)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 8)))
    assert small(x).shape == (3, 4)
    assert int(np.count_nonzero(small.model.qweight.values == 0)) >= 16
    assert np.count_nonzero(layer.weight.data) == 32  # the input is not changed


@pytest.mark.task("16.5")
def test_sensitivity_scan_of_a_bare_linear():
    layer = Linear(8, 4)
    before = snapshot(layer)
    scan = sensitivity_scan(layer, lambda m: -measure_sparsity(m), [0.5])
    assert [(name, s) for name, s, _ in scan] == [("", 0.5)] and scan[0][2] == -0.5
    assert_unchanged(layer, before)
    assert "(model)" in str(scan)


def test_structured_prune_of_a_bare_layer_keeps_its_outputs():
    layer = Linear(8, 4)
    before = snapshot(layer)
    assert len(structured_prune(layer, 0.5)) == 0  # its outputs are the model's outputs
    assert_unchanged(layer, before)


# ---- NaN and inf ----

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_weights_are_refused_naming_the_layer(mlp, bad):
    mlp[2].weight.data[3, 1] = bad
    before = snapshot(mlp)
    with pytest.raises(ValueError, match=r"layer '2' weight must be finite; 1 of its \d+ values are not, the first -?(nan|inf) at index \[3, 1\]"):
        magnitude_prune(mlp, 0.5)
    with pytest.raises(ValueError, match=r"layer '2'"):
        magnitude_prune(mlp, {"2": 0.5})
    assert_unchanged(mlp, before)


@pytest.mark.task("16.4")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_apply_sets_pruned_entries_to_exactly_zero_whatever_they_held(mlp, bad):
    keep = np.ones((16, 8), bool)
    keep[0, :3] = False
    mlp[0].weight.data[0, 0] = bad
    Masks(mlp, {"0.weight": keep}).apply()
    assert np.all(mlp[0].weight.data[0, :3] == 0.0) and not np.signbit(mlp[0].weight.data[0, :3]).any()
    assert np.all(np.isfinite(mlp[0].weight.data))


@pytest.mark.task("16.4")
def test_the_hook_sets_a_diverged_pruned_weight_to_zero(mlp):
    masks = magnitude_prune(mlp, 0.5)
    opt = SGD(mlp.parameters(), lr=0.1)
    masks.attach(opt)
    pruned = np.argwhere(~masks["0.weight"])[0]
    mlp[0].weight.data[tuple(pruned)] = np.inf
    for p in mlp.parameters():
        p.grad = np.zeros_like(p.data)
    opt.step()
    assert mlp[0].weight.data[tuple(pruned)] == 0.0


# ---- IterativePruner.run checks every argument before the first weight changes ----

def _loader():
    rng = np.random.default_rng(0)
    return DataLoader(TensorDataset(rng.standard_normal((32, 8)).astype(np.float32), rng.integers(0, 4, 32)),
                      batch_size=16)


@pytest.mark.parametrize("change, error, words", [
    ({"evaluate": "acc"}, TypeError, r"evaluate must be callable as evaluate\(model\) -> float or None, got 'acc'"),
    ({"optimizer": None}, TypeError, r"optimizer must be a tinytorch optimizer .*got None"),
    ({"optimizer": "other"}, ValueError, r"optimizer does not update these parameters of the model: 0.weight"),
    ({"loss_fn": 3}, TypeError, r"loss_fn must be callable"),
    ({"loader": None}, TypeError, r"loader must be an iterable"),
    ({"epochs_per_step": -1}, ValueError, r"epochs_per_step must be an int >= 0, got -1"),
])
def test_run_refuses_bad_arguments_before_pruning(mlp, change, error, words):
    args = {"optimizer": SGD(mlp.parameters(), lr=0.1), "loss_fn": CrossEntropyLoss(), "loader": _loader(),
            "epochs_per_step": 1, "evaluate": None}
    if change.get("optimizer") == "other":
        change = {"optimizer": SGD(make_mlp(seed=5).parameters(), lr=0.1)}
    args.update(change)
    before = snapshot(mlp)
    with pytest.raises(error, match=words):
        IterativePruner(0.8, steps=3).run(mlp, **args)
    assert_unchanged(mlp, before)


# ---- None where an object is expected ----

def test_none_arguments_are_named(mlp):
    with pytest.raises(TypeError, match=r"masks must be a Masks or a mapping of parameter name -> bool keep-mask, got NoneType None"):
        Masks(mlp, None)
    masks = magnitude_prune(mlp, 0.5)
    with pytest.raises(TypeError, match=r"optimizer must be a tinytorch optimizer .*got None"):
        masks.attach(None)
    with pytest.raises(TypeError, match=r"model must be a tinytorch Module, got NoneType None"):
        fine_tune(None, SGD(mlp.parameters(), lr=0.1), CrossEntropyLoss(), _loader(), 1)
    with pytest.raises(TypeError, match=r"masks must be a Masks"):
        fine_tune(mlp, SGD(mlp.parameters(), lr=0.1), CrossEntropyLoss(), _loader(), 1, masks={"0.weight": None})
    with pytest.raises(ValueError, match=r"epochs must be an int >= 0, got -2"):
        fine_tune(mlp, SGD(mlp.parameters(), lr=0.1), CrossEntropyLoss(), _loader(), -2)
