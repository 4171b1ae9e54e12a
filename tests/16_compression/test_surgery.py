"""Tasks 16.11-16.12: removing pruned units gives a smaller model with the masked model's outputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import magnitude_prune, structured_prune
from tinytorch.compression.surgery import plan_cut, remove_pruned_units, sequential_layers
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed

from .conftest import make_cnn, make_mlp

ATOL = 1e-5  # float32 sums over at most a few hundred terms, in a different order


def units_after(units, ratio):
    return units - min(round(ratio * units), units - 1)


def shapes(model):
    return [tuple(p.shape) for p in model.parameters()]


def snapshot(model):
    return {n: p.data.copy() for n, p in model.named_parameters() + model.named_buffers()}


def assert_same_outputs(masked, smaller, x):
    masked.eval()
    smaller.eval()
    expected, got = masked(x).data, smaller(x).data
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def deep_cnn(seed=0, channels=(4, 6)):
    """A nested CNN with AvgPool, Dropout and GELU on the way, and a two-layer head."""
    manual_seed(seed)
    c1, c2 = channels
    features = Sequential(
        Sequential(Conv2d(1, c1, 3, padding=1), BatchNorm2d(c1), GELU(), AvgPool2d(2)),
        Sequential(Conv2d(c1, c2, 3, padding=1), ReLU(), BatchNorm2d(c2), Dropout(0.2), MaxPool2d(2)),
    )
    return Sequential(features, Flatten(), Linear(c2 * 4, 12), Tanh(), Dropout(0.1), Linear(12, 10))


class Double(Module):
    """A layer remove_pruned_units has never heard of."""

    def forward(self, x):
        return x * 2


def random_images(n, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal((n, 1, 8, 8)))


# ---- Task 16.13: which units can go ------------------------------------------------

@pytest.mark.task("16.11")
def test_plan_cut_keeps_units_whose_output_is_not_zero():
    model = make_mlp((5, 6, 3))
    w = model[0].weight.data
    w[[1, 2, 4]] = 0.0
    model[0].bias.data[2] = 0.0
    model[0].bias.data[4] = 0.0
    keep_rows = np.abs(w).sum(axis=1) > 0
    masks = {"0.weight": np.broadcast_to(keep_rows[:, None], w.shape).copy()}
    cut = plan_cut(sequential_layers(model), 0, 2, masks)
    # unit 1 has a pruned row but bias != 0: relu(b) still reaches the next layer
    np.testing.assert_array_equal(cut.keep, [True, True, False, True, False, True])
    assert cut.block == 1 and cut.channels == []


@pytest.mark.task("16.11")
def test_plan_cut_needs_zero_batchnorm_scale_and_shift():
    model = make_cnn(channels=(4, 6))
    masks = structured_prune(model, 0.5)
    layers = sequential_layers(model)
    dropped = ~masks["0.bias"]
    cut = plan_cut(layers, 0, 4, masks)
    np.testing.assert_array_equal(cut.keep, ~dropped)
    assert cut.channels == [model[1]] and cut.block == 1
    model[1].weight.data[np.flatnonzero(dropped)[0]] = 0.5  # BN turns a zero channel into -mean*gamma/std
    cut = plan_cut(layers, 0, 4, masks)
    assert cut.keep.sum() == (~dropped).sum() + 1
    flat = plan_cut(layers, 4, 9, masks)
    assert flat.block == 4  # one channel of the 2x2 map = 4 features of the Linear


@pytest.mark.task("16.11")
def test_plan_cut_sigmoid_keeps_everything_and_at_least_one_unit_stays():
    manual_seed(0)
    model = Sequential(Linear(4, 6), Sigmoid(), Linear(6, 2))
    masks = structured_prune(model, 0.5)
    assert plan_cut(sequential_layers(model), 0, 2, masks).keep.all()  # sigmoid(0) = 0.5 is not zero
    model = Sequential(Linear(4, 6), ReLU(), Linear(6, 2))
    for p in (model[0].weight, model[0].bias):
        p.data[...] = 0.0
    masks = {"0.weight": np.zeros((6, 4), bool), "0.bias": np.zeros(6, bool)}
    keep = plan_cut(sequential_layers(model), 0, 2, masks).keep
    assert keep.sum() == 1


@pytest.mark.task("16.11")
@pytest.mark.parametrize("between, words", [
    (Softmax(), "'1'.*Softmax"),
    (Double(), "'1' is a Double, which it does not know"),
])
def test_plan_cut_refuses_layers_it_cannot_follow(between, words):
    manual_seed(0)
    model = Sequential(Linear(4, 6), between, Linear(6, 2))
    masks = structured_prune(model, 0.5)
    with pytest.raises(ValueError, match=words):
        plan_cut(sequential_layers(model), 0, 2, masks)
    with pytest.raises(ValueError, match=words):
        remove_pruned_units(model, masks)


@pytest.mark.task("16.11")
def test_unknown_layer_is_fine_when_nothing_is_removed():
    manual_seed(0)
    model = Sequential(Linear(4, 6), Double(), Linear(6, 2))
    smaller = remove_pruned_units(model, structured_prune(model, 0.0))
    assert shapes(smaller) == shapes(model)
    x = Tensor(np.ones((2, 4)))
    np.testing.assert_array_equal(smaller(x).data, model(x).data)


@pytest.mark.task("16.11")
def test_consumer_must_take_the_units_as_inputs():
    manual_seed(0)
    model = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), Linear(8, 3))  # a Linear over the width axis
    with pytest.raises(ValueError, match=r"'2' \(Linear with weight \(3, 8\)\) does not take its 4 units"):
        remove_pruned_units(model, structured_prune(model, 0.5))


# ---- Task 16.14: the smaller model --------------------------------------------------

@pytest.mark.task("16.12")
@settings(max_examples=25)
@given(sizes=st.lists(st.integers(1, 12), min_size=3, max_size=5), ratio=st.floats(0, 0.95),
       seed=st.integers(0, 1000), norm=st.sampled_from([1, 2]))
def test_mlp_same_outputs_and_expected_shapes(sizes, ratio, seed, norm):
    model = make_mlp(tuple(sizes), seed=seed)
    masks = structured_prune(model, ratio, norm=norm)
    before = snapshot(model)
    smaller = remove_pruned_units(model, masks)
    hidden = [units_after(n, ratio) for n in sizes[1:-1]]
    widths = [sizes[0], *hidden, sizes[-1]]
    expected = [s for a, b in zip(widths, widths[1:]) for s in ((b, a), (b,))]
    assert shapes(smaller) == expected
    assert_same_outputs(model, smaller, Tensor(np.random.default_rng(seed).standard_normal((4, sizes[0]))))
    for name, value in snapshot(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} of the input model changed")


@pytest.mark.task("16.12")
@settings(max_examples=20)
@given(c1=st.integers(1, 7), c2=st.integers(1, 7), ratio=st.floats(0, 0.9), seed=st.integers(0, 1000))
def test_cnn_with_batchnorm_pooling_flatten(c1, c2, ratio, seed):
    model = make_cnn(seed=seed, channels=(c1, c2))
    model(random_images(6, seed))  # training-mode pass: running statistics move off their defaults
    masks = structured_prune(model, ratio)
    smaller = remove_pruned_units(model, masks)
    k1, k2 = units_after(c1, ratio), units_after(c2, ratio)
    assert shapes(smaller) == [(k1, 1, 3, 3), (k1,), (k1,), (k1,), (k2, k1, 3, 3), (k2,), (k2,), (k2,),
                               (10, 4 * k2), (10,)]
    assert [b.shape for b in smaller.buffers()] == [(k1,), (k1,), (k2,), (k2,)]
    assert smaller[1].num_features == k1 and smaller[4].in_channels == k1 and smaller[9].in_features == 4 * k2
    assert_same_outputs(model, smaller, random_images(5, seed + 1))


@pytest.mark.task("16.12")
@settings(max_examples=15)
@given(ratio=st.floats(0, 0.9), seed=st.integers(0, 1000))
def test_nested_model_is_flattened_and_matches(ratio, seed):
    model = deep_cnn(seed, channels=(5, 6))
    model(random_images(4, seed))
    masks = structured_prune(model, ratio)
    smaller = remove_pruned_units(model, masks)
    assert len(smaller) == 14 and all(not isinstance(layer, Sequential) for layer in smaller)
    k = [units_after(5, ratio), units_after(6, ratio), units_after(12, ratio)]
    assert smaller[0].weight.shape[0] == smaller[1].num_features == smaller[4].in_channels == k[0]
    assert smaller[6].num_features == k[1] and smaller[10].weight.shape == (k[2], 4 * k[1])
    assert smaller[13].weight.shape == (10, k[2])
    assert_same_outputs(model, smaller, random_images(3, seed))


@pytest.mark.task("16.12")
def test_masks_need_not_be_applied_and_ratio_zero_copies():
    model = make_cnn(seed=3)
    before = snapshot(model)
    masks = structured_prune(model, 0.5)
    model.load_state_dict(before)  # the masks are not applied any more
    smaller = remove_pruned_units(model, masks)
    masks.apply()
    assert_same_outputs(model, smaller, random_images(3))
    copy = remove_pruned_units(model, structured_prune(model, 0.0))
    assert shapes(copy) == shapes(model)
    for (name, p), q in zip(model.named_parameters(), copy.parameters()):
        assert p is not q and np.array_equal(p.data, q.data), name


@pytest.mark.task("16.12")
@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_the_copy_shares_no_memory_and_the_input_keeps_its_arrays_and_gradients(ratio):
    model = make_cnn(seed=4)
    masks = structured_prune(model, ratio)
    model.train()
    CrossEntropyLoss()(model(random_images(5)), Tensor(np.arange(5) % 10)).backward()
    before, grads = snapshot(model), {n: p.grad.copy() for n, p in model.named_parameters()}
    arrays = {n: p.data for n, p in model.named_parameters() + model.named_buffers()}
    smaller = remove_pruned_units(model, masks)
    for name, p in model.named_parameters() + model.named_buffers():
        assert p.data is arrays[name] and np.array_equal(p.data, before[name]), name
    for name, p in model.named_parameters():
        assert np.array_equal(p.grad, grads[name]), name
    ours = [p.data for p in model.parameters() + model.buffers()]
    for name, q in smaller.named_parameters() + smaller.named_buffers():
        assert not any(np.shares_memory(q.data, a) for a in ours), name
        assert q.grad is None, name
    assert smaller.training


@pytest.mark.task("16.12")
def test_unstructured_masks_remove_only_dead_units_and_never_the_classes():
    model = make_mlp((6, 8, 5), seed=2)
    masks = magnitude_prune(model, 0.6)
    assert shapes(remove_pruned_units(model, masks)) == shapes(model)  # rows with bias != 0 stay
    kill = {"2.weight": np.zeros((5, 8), bool), "2.bias": np.zeros(5, bool)}
    smaller = remove_pruned_units(model, kill)
    assert smaller[2].weight.shape == (5, 8)  # the last layer's outputs are the classes


@pytest.mark.task("16.12")
def test_bad_inputs():
    model = make_mlp()
    other = make_mlp((8, 20, 12, 4))
    with pytest.raises(ValueError, match=r"not made for this model.*'0.weight' is bool \(20, 8\)"):
        remove_pruned_units(model, structured_prune(other, 0.5))
    with pytest.raises(ValueError, match="'fc.weight' is not a parameter"):
        remove_pruned_units(model, {"fc.weight": np.ones((16, 8), bool)})
    with pytest.raises(TypeError, match="model must be a tinytorch Module, got list"):
        remove_pruned_units([Linear(2, 2)], {})
    with pytest.raises(TypeError, match="masks must be a Masks"):
        remove_pruned_units(model, [np.ones((16, 8), bool)])

    class TwoLayers(Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Linear(3, 4), Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x))

    relu, shared = ReLU(), Linear(6, 6)
    twice = Sequential(Linear(4, 6), relu, shared, relu, shared, relu, Linear(6, 2))  # a shared ReLU is fine
    with pytest.raises(ValueError, match="layer '4' is the same object as layer '2'"):
        remove_pruned_units(twice, structured_prune(twice, 0.5))
    custom = TwoLayers()
    with pytest.raises(ValueError, match="TwoLayers with sub-modules and its own forward"):
        remove_pruned_units(custom, structured_prune(custom, 0.5))
    assert shapes(remove_pruned_units(model, structured_prune(model, 0.5)))[0] == (8, 8)  # the same model works


@pytest.mark.task("16.12")
def test_fine_tune_removed_model_with_a_new_optimizer():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 8)))
    y = rng.integers(0, 4, 64)
    model = make_mlp((8, 32, 16, 4), seed=1)
    old_optimizer = Adam(model.parameters(), lr=1e-2)
    smaller = remove_pruned_units(model, structured_prune(model, 0.5))
    new_ids = {id(p) for p in smaller.parameters()}
    assert not new_ids & {id(p) for p in old_optimizer.params}  # the old optimizer updates the old model
    optimizer = Adam(smaller.parameters(), lr=3e-2)
    loss_fn = CrossEntropyLoss()
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = loss_fn(smaller(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.9 * losses[0], losses
    assert shapes(smaller)[0] == (16, 8)
