"""Task 16.6: structured pruning of whole units, against torch's ln_structured."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.compression import prunable_layers, structured_prune, unit_norms
from tinytorch.core.tensor import Tensor

from .conftest import make_cnn, make_mlp


def alive_units(weight):
    return int(np.count_nonzero(np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1)))


@pytest.mark.task("16.6")
@given(ratio=st.floats(0, 0.99), seed=st.integers(0, 30), norm=st.sampled_from([1, 2]))
def test_counts_norm_order_and_class_layer(ratio, seed, norm):
    model = make_cnn(seed=seed, channels=(5, 7))
    before = [layer.weight.data.copy() for _, layer in prunable_layers(model)]
    structured_prune(model, ratio, norm=norm)
    layers = prunable_layers(model)
    for (name, layer), w0 in zip(layers[:-1], before):
        units = w0.shape[0]
        k = min(round(ratio * units), units - 1)
        assert alive_units(layer.weight.data) == units - k
        dropped = np.argsort(unit_norms(w0, norm), kind="stable")[:k]
        assert np.all(layer.weight.data[dropped] == 0) and np.all(layer.bias.data[dropped] == 0)
    np.testing.assert_array_equal(layers[-1][1].weight.data, before[-1])  # the classes stay


@pytest.mark.task("16.6")
def test_pruned_channels_output_exact_zero_through_batchnorm():
    model = make_cnn(seed=1)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 1, 8, 8)))
    model(x)  # train-mode pass: running statistics move away from their defaults
    masks = structured_prune(model, 0.5)
    assert {"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "5.weight"} <= set(masks)
    dropped = np.flatnonzero(~masks["1.weight"])
    for mode in ("train", "eval"):
        getattr(model, mode)()
        out = model[:3](x).data  # conv, batchnorm, relu
        assert np.all(out[:, dropped] == 0), mode


def test_unit_norms_formula(rng):
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(unit_norms(w, 1), np.abs(w).reshape(4, -1).sum(1), rtol=1e-6)
    np.testing.assert_allclose(unit_norms(w, 2), np.sqrt((w.astype(np.float64) ** 2).reshape(4, -1).sum(1)), rtol=1e-6)


@pytest.mark.parametrize("ratio, error, words", [
    (1.0, ValueError, r"ratio must be a number in \[0, 1\), got 1.0"),
    (float("nan"), ValueError, "ratio"),
    (None, TypeError, "ratio must be a number"),
])
def test_bad_ratio(mlp, ratio, error, words):
    with pytest.raises(error, match=words):
        structured_prune(mlp, ratio)
    with pytest.raises(ValueError, match="norm must be 1 or 2, got 3"):
        structured_prune(mlp, 0.5, norm=3)


@pytest.mark.task("16.6")
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_masks_equal_torch_ln_structured(n, ratio):
    torch = pytest.importorskip("torch")
    from torch.nn.utils import prune

    model = make_mlp((10, 16, 12, 3), seed=7)
    structured = structured_prune(model, ratio, norm=n)
    reference = make_mlp((10, 16, 12, 3), seed=7)
    for (name, layer), _ in zip(prunable_layers(reference)[:-1], range(99)):
        t = torch.nn.Linear(*layer.weight.data.shape[::-1])
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        prune.ln_structured(t, "weight", amount=ratio, n=n, dim=0)
        np.testing.assert_array_equal(structured[f"{name}.weight"], t.weight_mask.numpy().astype(bool))
