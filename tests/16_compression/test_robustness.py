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

FINITE = r"must be finite \(not NaN or inf\)"  # check_finite's words


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
    with pytest.raises(ValueError, match=rf"layer '2' weight {FINITE}; 1 of its \d+ values are not, the first -?(nan|inf) at index \[3, 1\]"):
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


# ---- finite or refused, before anything changes ----

def _poisoned(bad, where=(2, "weight", (3, 1))):
    model = make_mlp()
    layer, what, index = where
    getattr(model[layer], what).data[index] = bad
    return model


BAD = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("bad", BAD)
def test_kmeans_refuses_nan_or_inf_naming_the_layer_and_replaces_nothing(bad):
    from tinytorch.compression.sharing import kmeans_codebook, share_weights

    model = _poisoned(bad)
    before = snapshot(model)
    kinds = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=rf"layer '2' weight {FINITE}; 1 of its 192 values are not"):
        share_weights(model, 4)
    assert [type(m) for m in model.modules()] == kinds  # layer '0' was not replaced either
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"layer '2' weight must be finite"):
        prune_and_quantize(model, None, bits=4, codebook="kmeans")
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=rf"values {FINITE}; 1 of its 3 values are not"):
        kmeans_codebook(np.array([0.5, bad, -0.25]), 2)


def test_kmeans_refuses_a_nan_bias_naming_the_layer():
    from tinytorch.compression.sharing import share_weights

    model = _poisoned(np.nan, (0, "bias", 5))
    with pytest.raises(ValueError, match=rf"layer '0' bias {FINITE}; 1 of its 16 values are not, the first nan "
                                         r"at index \[5\]"):
        share_weights(model, 4)
    assert all(type(m).__name__ != "SharedLinear" for m in model.modules())


@pytest.mark.parametrize("iterations, error", [(-1, ValueError), (True, TypeError), (2.5, TypeError)])
def test_kmeans_iterations_must_be_a_count(iterations, error):
    from tinytorch.compression.sharing import kmeans_codebook

    with pytest.raises(error, match=rf"iterations must be an int >= 0, got {iterations!r}"):
        kmeans_codebook(np.array([0.5, 1.0]), 2, iterations=iterations)
    centroids, codes = kmeans_codebook(np.array([0.5, 1.0]), 1, iterations=0)  # 0: the linear initialisation
    assert np.array_equal(centroids, [0.5, 1.0]) and np.array_equal(codes, [0, 1])


@pytest.mark.parametrize("lr", [np.inf, np.nan, 0.0, -1e-3])
def test_fine_tune_centroids_refuses_a_learning_rate_that_is_not_finite_and_positive(lr):
    from tinytorch.compression import fine_tune_centroids

    small = prune_and_quantize(make_mlp(), 0.5, bits=3, codebook="kmeans")
    before = [p.data.copy() for p in small.parameters()]
    with pytest.raises(ValueError, match=rf"lr must be a finite number > 0, got {lr!r}"):
        fine_tune_centroids(small, CrossEntropyLoss(), _loader(), 1, lr=lr)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, small.parameters()))


@pytest.mark.parametrize("bad", BAD)
def test_low_rank_checks_finiteness_before_the_svd(bad):
    from tinytorch.compression import low_rank

    layer = Linear(6, 5)
    layer.weight.data[2, 3] = bad
    before = snapshot(layer)
    # NOTE: on an inf, LAPACK's SVD could run for ever: this test would hang, not fail, without the check
    with pytest.raises(ValueError, match=rf"layer.weight {FINITE}; 1 of its 30 values are not"):
        low_rank(layer, rank=2)
    assert_unchanged(layer, before)
    layer = Linear(6, 5)
    layer.bias.data[0] = bad
    with pytest.raises(ValueError, match=r"layer.bias must be finite"):
        low_rank(layer, energy=0.9)


@pytest.mark.parametrize("value, error, words", [
    (np.nan, ValueError, rf"rewind_to\['0.weight'\] {FINITE} and within float32's range .* the first nan"),
    (np.inf, ValueError, r"the first inf"),
    (1e300, ValueError, rf"rewind_to\['0.weight'\] {FINITE} and within float32's range .* the first 1e\+300"),
    (None, TypeError, r"rewind_to\['0.weight'\] must hold real numbers \(int or float\), got dtype object"),
    (1j, TypeError, r"rewind_to\['0.weight'\] must hold real numbers \(int or float\), got dtype complex128"),
])
def test_rewind_to_values_are_checked_before_anything_is_pruned(mlp, value, error, words):
    state = mlp.state_dict()
    rewind = {k: v.astype(np.float64) if k == "0.weight" else v for k, v in state.items()}
    rewind["0.weight"] = rewind["0.weight"].astype(object if value is None else complex if value == 1j else np.float64)
    rewind["0.weight"][1, 1] = value
    before = snapshot(mlp)
    with pytest.raises(error, match=words):
        IterativePruner(0.5, 2, rewind_to=rewind)
    assert_unchanged(mlp, before)


def test_rewind_to_accepts_float64_that_float32_holds(mlp):
    rewind = {k: v.astype(np.float64) for k, v in mlp.state_dict().items()}
    pruner = IterativePruner(0.5, 1, rewind_to=rewind)
    pruner.run(mlp, SGD(mlp.parameters(), lr=0.1), CrossEntropyLoss(), _loader(), epochs_per_step=0)
    kept = pruner.masks["0.weight"]
    np.testing.assert_array_equal(mlp[0].weight.data[kept], rewind["0.weight"][kept].astype(np.float32))


@pytest.mark.parametrize("what, index", [("weight", (1, 2)), ("bias", 3)])
def test_structured_prune_refuses_a_nan_rather_than_keeping_its_row(what, index):
    model = _poisoned(np.nan, (0, what, index))
    before = snapshot(model)
    with pytest.raises(ValueError, match=rf"layer '0' {what} {FINITE}; 1 of its \d+ values are not, the first nan"):
        structured_prune(model, 0.5)
    for n, p in model.named_parameters():  # NaN != NaN: compare what is stored, bit for bit
        assert p.data.tobytes() == before[n].tobytes(), n


@pytest.mark.parametrize("bad", BAD)
def test_prune_and_quantize_refuses_a_nan_or_inf_bias_naming_the_layer(bad):
    model = _poisoned(bad, (4, "bias", 1))
    for kwargs in ({}, {"int8_bias": True}, {"bits": 4, "codebook": "kmeans"}, {"sparsity": None}):
        with pytest.raises(ValueError, match=rf"layer '4' bias {FINITE}; 1 of its 4 values are not"):
            prune_and_quantize(model, **({"sparsity": 0.5} | kwargs))


def test_a_layer_named_twice_in_a_sparsity_dict_is_refused(mlp):
    before = snapshot(mlp)
    for spec in ({"0": 0.5, "0.weight": 0.9}, {"0.weight": 0.9, "0": 0.5}):
        with pytest.raises(ValueError, match=r"sparsity names layer '0' twice, as '0(.weight)?' and '0(.weight)?': "
                                             r"give one sparsity per layer"):
            magnitude_prune(mlp, spec)
        assert_unchanged(mlp, before)
    magnitude_prune(mlp, {"0": 0.5, "2.weight": 0.25})  # one name per layer, either form, is fine
    assert np.count_nonzero(mlp[0].weight.data == 0) == 64 and np.count_nonzero(mlp[2].weight.data == 0) == 48


@pytest.mark.parametrize("sizes, error, words", [
    ({}, ValueError, r"sizes must give at least one layer a number of weights > 0, got \{\}"),
    ({"a": 0, "b": 0}, ValueError, r"sizes must give at least one layer a number of weights > 0"),
    ({"a": 100, "b": -50}, ValueError, r"sizes\['b'\] must be an int >= 0, got -50"),
    ({"a": 100, "b": 1.5}, TypeError, r"sizes\['b'\] must be an int >= 0, got 1.5"),
    ([("a", 100)], TypeError, r"sizes must be a dict \{layer name: number of weights\}, got list"),
])
def test_allocate_sparsity_refuses_sizes_that_weigh_nothing(sizes, error, words):
    from tinytorch.compression import SensitivityScan, allocate_sparsity

    scan = SensitivityScan([("a", 0.5, 0.9), ("b", 0.5, 0.8)], baseline=0.95)
    with pytest.raises(error, match=words):
        allocate_sparsity(scan, sizes, 0.3)


@pytest.mark.parametrize("bad", BAD)
def test_distillation_refuses_nan_or_inf_logits(bad):
    from tinytorch.compression import distillation_loss

    rng = np.random.default_rng(0)
    student, teacher = Tensor(rng.standard_normal((4, 3)), requires_grad=True), rng.standard_normal((4, 3))
    targets = np.array([0, 1, 2, 0])
    poisoned = teacher.copy()
    poisoned[2, 1] = bad
    with pytest.raises(ValueError, match=rf"teacher_logits {FINITE}; 1 of its 12 values are not"):
        distillation_loss(student, poisoned, targets)
    student.data[0, 0] = bad
    with pytest.raises(ValueError, match=r"student_logits must be finite"):
        distillation_loss(student, teacher, targets)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the inf teacher's own forward
@pytest.mark.parametrize("where", ["inputs", "teacher"])
def test_distill_refuses_nan_inputs_or_a_nan_teacher_before_the_student_changes(where):
    from tinytorch.compression import distill

    student, teacher = make_mlp(seed=1), make_mlp(seed=2)
    x = np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32)
    if where == "inputs":
        x[3, 4] = np.nan
    else:
        teacher[4].weight.data[0, 0] = np.inf
    loader = DataLoader(TensorDataset(x, np.zeros(32, np.int64)), batch_size=16)
    before = snapshot(student)
    words = r"the inputs of batch 0 must be finite" if where == "inputs" else r"the teacher's logits for batch 0 must be finite"
    with pytest.raises(ValueError, match=words):
        distill(student, teacher, SGD(student.parameters(), lr=0.1), loader, 1, progress=False)
    assert_unchanged(student, before)


@pytest.mark.parametrize("dim", [0.5, [0, 0], 1000])
def test_a_file_with_a_softmax_dim_that_is_not_an_int_is_refused_at_load(dim):
    from tinytorch.compression.container import from_bytes, to_bytes
    from tinytorch.core.activations import Softmax

    model = Sequential(Linear(4, 3), Softmax(dim=1))
    model[1].dim = dim  # as a crafted file would hold it
    with pytest.raises(ValueError, match=r"dim must be an int >= -64 and <= 63, got"):
        from_bytes(to_bytes(model))


def test_a_softmax_dim_from_a_file_out_of_range_for_the_input_says_so_at_forward():
    from tinytorch.compression.container import from_bytes, to_bytes
    from tinytorch.core.activations import Softmax

    loaded = from_bytes(to_bytes(Sequential(Linear(4, 3), Softmax(dim=2))))
    with pytest.raises(ValueError, match=r"Softmax\(dim=2\) needs dim in \[-2, 1\] for an input of shape \(5, 3\)"):
        loaded(Tensor(np.ones((5, 4), np.float32)))


def test_distillation_loss_names_a_student_that_is_not_a_tensor():
    from tinytorch.compression import distillation_loss

    with pytest.raises(TypeError, match=r"student_logits must be a Tensor, got ndarray"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 1]))


def test_rewind_to_must_be_a_state_dict():
    with pytest.raises(TypeError, match=r"rewind_to must be a state dict \(name -> array\) or None, got list"):
        IterativePruner(0.5, 2, rewind_to=[np.zeros(3)])
