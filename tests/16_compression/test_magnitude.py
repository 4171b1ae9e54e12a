"""Tasks 16.2-16.3 (and the given sampled selection): magnitude pruning, exact counts, against torch.nn.utils.prune."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.compression import magnitude_prune, prunable_layers, smallest_k_masks, sparsity_report
from tinytorch.compression.prune import kth_smallest_magnitude

from .conftest import make_cnn, make_mlp


def weights(model):
    return [layer.weight.data for _, layer in prunable_layers(model)]


@pytest.mark.task("16.2")
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4), frac=st.floats(0, 1), seed=st.integers(0, 99))
def test_smallest_k_matches_a_stable_sort(sizes, frac, seed):
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties at the threshold are common.
    arrays = [rng.integers(-3, 4, n).astype(np.float32) for n in sizes]
    flat = np.concatenate(arrays)
    k = int(frac * flat.size)
    kept = np.concatenate([m.ravel() for m in smallest_k_masks(arrays, k)])
    expected = np.ones(flat.size, bool)
    expected[np.argsort(np.abs(flat), kind="stable")[:k]] = False
    np.testing.assert_array_equal(kept, expected)


@given(n=st.integers(1, 3000), frac=st.floats(0, 1), seed=st.integers(0, 99), ties=st.booleans(),
       sample=st.sampled_from([4, 16, 64, 65536]))
def test_kth_smallest_equals_partition_on_both_paths(n, frac, seed, ties, sample):
    rng = np.random.default_rng(seed)
    data = rng.integers(-5, 6, n).astype(np.float32) if ties else rng.standard_normal(n).astype(np.float32)
    cut = int(rng.integers(0, n + 1))
    arrays = [data[:cut].reshape(-1, 1), data[cut:]]
    k = max(1, int(frac * n))
    assert kth_smallest_magnitude(arrays, k, sample=sample) == np.sort(np.abs(data))[k - 1]


def test_smallest_k_rejects_impossible_k():
    with pytest.raises(ValueError, match=r"k must be an int >= 0 and <= 3, got 4"):
        smallest_k_masks([np.ones(3, np.float32)], 4)


@pytest.mark.task("16.3")
@given(sparsity=st.floats(0, 0.99), seed=st.integers(0, 50), scope=st.sampled_from(["global", "layer"]))
def test_exact_count_and_smallest_magnitudes(sparsity, seed, scope):
    model = make_mlp((9, 13, 7, 3), seed=seed)
    before = [w.copy() for w in weights(model)]
    biases = [layer.bias.data.copy() for _, layer in prunable_layers(model)]
    masks = magnitude_prune(model, sparsity, scope=scope)
    groups = [np.concatenate([b.ravel() for b in before])] if scope == "global" else [b.ravel() for b in before]
    k_total = sum(round(sparsity * g.size) for g in groups)
    zeros = sum(w.size - np.count_nonzero(w) for w in weights(model))
    assert zeros == k_total  # random weights have no zeros of their own
    for w, b, (name, layer) in zip(weights(model), before, prunable_layers(model)):
        keep = masks[f"{name}.weight"]
        np.testing.assert_array_equal(w[keep], b[keep])  # survivors untouched
        assert np.all(w[~keep] == 0)
    if scope == "global" and 0 < k_total < groups[0].size:
        flat_before = groups[0]
        threshold = np.sort(np.abs(flat_before))[k_total - 1]
        kept = np.concatenate([np.abs(b[masks[f"{n}.weight"]]) for b, (n, _) in zip(before, prunable_layers(model))])
        assert kept.min() > threshold
    for bias, (_, layer) in zip(biases, prunable_layers(model)):
        np.testing.assert_array_equal(layer.bias.data, bias)


@pytest.mark.task("16.3")
@given(sparsity=st.floats(0, 0.99), seed=st.integers(0, 20))
def test_pruning_twice_changes_nothing(sparsity, seed):
    model = make_mlp(seed=seed)
    magnitude_prune(model, sparsity)
    once = [w.copy() for w in weights(model)]
    magnitude_prune(model, sparsity)
    for a, b in zip(once, weights(model)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.task("16.3")
def test_sparsity_zero_changes_nothing(cnn):
    before = {n: p.data.copy() for n, p in cnn.named_parameters()}
    masks = magnitude_prune(cnn, 0.0)
    assert masks.sparsity == 0.0
    for n, p in cnn.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


@pytest.mark.task("16.3")
def test_layerwise_dict(cnn):
    magnitude_prune(cnn, {"0": 0.5, "9.weight": 0.25})
    rows = {r.name: r for r in sparsity_report(cnn)}
    assert rows["0"].zeros == round(0.5 * rows["0"].params)
    assert rows["4"].zeros == 0
    assert rows["9"].zeros == round(0.25 * rows["9"].params)


@pytest.mark.parametrize("bad, error, words", [
    (1.0, ValueError, r"sparsity must be a number in \[0, 1\), got 1.0"),
    (-0.1, ValueError, r"sparsity must be a number in \[0, 1\), got -0.1"),
    (float("nan"), ValueError, r"got nan"),
    ("0.5", TypeError, r"sparsity must be a number in \[0, 1\), got '0.5'$"),
    (True, TypeError, r"got True$"),
    ({"7": 0.5}, ValueError, r"names layer '7'.*prunable layers: 0, 2, 4"),
    ({"0": 2.0}, ValueError, r"sparsity\['0'\] must be a number in \[0, 1\), got 2.0"),
])
def test_bad_sparsity_is_refused_and_nothing_changes(mlp, bad, error, words):
    before = {n: p.data.copy() for n, p in mlp.named_parameters()}
    with pytest.raises(error, match=words):
        magnitude_prune(mlp, bad)
    for n, p in mlp.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_bad_scope_and_model(mlp):
    with pytest.raises(ValueError, match="scope must be 'global' or 'layer', got 'all'"):
        magnitude_prune(mlp, 0.5, scope="all")
    with pytest.raises(TypeError, match="got dict"):
        magnitude_prune({"weight": 1}, 0.5)


# ---- PyTorch as the reference, where it is installed ----------------------------------

def _torch_copy(model):
    torch = pytest.importorskip("torch")
    layers = []
    for _, layer in prunable_layers(model):
        w = layer.weight.data
        t = torch.nn.Linear(w.shape[1], w.shape[0]) if w.ndim == 2 else torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:])
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(w.copy()))
        layers.append(t)
    return torch, layers


@pytest.mark.task("16.3")
@pytest.mark.parametrize("sparsity", [0.3, 0.9, 0.97])
def test_global_masks_equal_torch_global_unstructured(sparsity):
    model = make_cnn(seed=3)
    torch, layers = _torch_copy(model)
    from torch.nn.utils import prune

    prune.global_unstructured([(t, "weight") for t in layers], pruning_method=prune.L1Unstructured, amount=sparsity)
    masks = magnitude_prune(model, sparsity)
    for (name, _), t in zip(prunable_layers(model), layers):
        np.testing.assert_array_equal(masks[f"{name}.weight"], t.weight_mask.numpy().astype(bool))


@pytest.mark.task("16.3")
@pytest.mark.parametrize("sparsity", [0.25, 0.8])
def test_layer_masks_equal_torch_l1_unstructured(sparsity):
    model = make_cnn(seed=4)
    torch, layers = _torch_copy(model)
    from torch.nn.utils import prune

    for t in layers:
        prune.l1_unstructured(t, "weight", amount=sparsity)
    masks = magnitude_prune(model, sparsity, scope="layer")
    for (name, _), t in zip(prunable_layers(model), layers):
        np.testing.assert_array_equal(masks[f"{name}.weight"], t.weight_mask.numpy().astype(bool))
