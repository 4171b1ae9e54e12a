"""Task 16.4: masks, and the optimizer hook that keeps pruned weights at zero."""
import numpy as np
import pytest

from tinytorch.compression import Masks, magnitude_prune, structured_prune
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor

from .conftest import make_cnn, make_mlp

OPTIMIZERS = {
    "sgd-momentum-decay": lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda p: Adam(p, lr=0.01, weight_decay=0.01),
    "adamw": lambda p: AdamW(p, lr=0.01, weight_decay=0.1),
}


def train_steps(model, opt, steps, rng):
    loss_fn = CrossEntropyLoss()
    for _ in range(steps):
        x = Tensor(rng.standard_normal((16, 8)))
        y = rng.integers(0, 4, 16)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


@pytest.mark.task("16.4")
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_pruned_weights_stay_exactly_zero_for_500_steps(name, rng):
    model = make_mlp()
    masks = magnitude_prune(model, 0.7)
    opt = OPTIMIZERS[name](model.parameters())
    handle = masks.attach(opt)
    start = {n: p.data.copy() for n, p in model.named_parameters()}
    train_steps(model, opt, 500, rng)
    params = dict(model.named_parameters())
    for pname, keep in masks.items():
        assert np.all(params[pname].data[~keep] == 0.0), pname
        assert not np.array_equal(params[pname].data[keep], start[pname][keep])  # it did train
        for i, p in enumerate(opt.params):
            if p is params[pname]:
                for key, buf in opt.state[i].items():
                    assert np.all(buf[~keep] == 0), f"{name} state {key} of {pname}"
    handle.remove()
    train_steps(model, opt, 3, rng)  # once removed, nothing holds the zeros
    assert any(np.any(params[p].data[~k] != 0) for p, k in masks.items())


@pytest.mark.task("16.4")
def test_without_the_hook_pruned_weights_come_back(rng):
    model = make_mlp()
    masks = magnitude_prune(model, 0.7)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_steps(model, opt, 1, rng)
    params = dict(model.named_parameters())
    assert any(np.any(params[p].data[~k] != 0) for p, k in masks.items())


@pytest.mark.task("16.4")
def test_structured_masks_hold_biases_and_batchnorm(rng):
    model = make_cnn()
    masks = structured_prune(model, 0.5)
    opt = Adam(model.parameters(), lr=0.01)
    masks.attach(opt)
    loss_fn = CrossEntropyLoss()
    for _ in range(20):
        opt.zero_grad()
        loss_fn(model(Tensor(rng.standard_normal((4, 1, 8, 8)))), rng.integers(0, 10, 4)).backward()
        opt.step()
    params = dict(model.named_parameters())
    for pname, keep in masks.items():
        assert np.all(params[pname].data[~keep] == 0.0), pname


@pytest.mark.task("16.4")
def test_masks_of_another_model_are_refused():
    a, b = make_mlp(seed=1), make_mlp(seed=2)
    masks = magnitude_prune(a, 0.5)
    before = {n: p.data.copy() for n, p in b.named_parameters()}
    with pytest.raises(ValueError, match="another model"):
        masks.attach(SGD(b.parameters(), lr=0.1))
    for n, p in b.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_masks_validate_names_and_shapes(mlp):
    with pytest.raises(ValueError, match=r"not made for this model: '9.weight' is not a parameter of this model "
                                         r"\(the model's parameters: 0.weight \(16, 8\)"):
        Masks(mlp, {"9.weight": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match=r"'0.weight' is bool \(8, 16\), not bool \(16, 8\)"):
        Masks(mlp, {"0.weight": np.ones((8, 16), bool)})
    with pytest.raises(ValueError, match=r"'0.weight' is float64 \(16, 8\), not bool \(16, 8\)"):
        Masks(mlp, {"0.weight": np.ones((16, 8))})


@pytest.mark.task("16.4")
def test_apply_and_combine(mlp, rng):
    keep = rng.random((16, 8)) > 0.5
    masks = Masks(mlp, {"0.weight": keep})
    masks.apply()
    assert np.all(mlp[0].weight.data[~keep] == 0) and np.all(mlp[0].weight.data[keep] != 0)
    other = Masks(mlp, {"0.weight": ~keep, "2.weight": np.zeros((12, 16), bool)})
    both = masks & other
    assert not both["0.weight"].any() and both.sparsity == 1.0
    assert masks.sparsity == pytest.approx(1 - keep.mean())


def test_fine_tune_for_zero_epochs_changes_nothing_and_negative_epochs_are_refused():
    from tinytorch.compression import fine_tune

    model = make_mlp((6, 5, 3), seed=0)
    masks = magnitude_prune(model, 0.5)
    opt = Adam(model.parameters(), lr=0.1)
    loader = [(Tensor(np.ones((4, 6), dtype=np.float32)), np.array([0, 1, 2, 0]))]
    before = {k: v.copy() for k, v in model.state_dict().items()}
    assert fine_tune(model, opt, CrossEntropyLoss(), loader, 0, masks=masks) == []
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(not s for s in opt.state)  # no step was taken
    with pytest.raises(ValueError, match=r"epochs must be .*>= 0.*-1"):
        fine_tune(model, opt, CrossEntropyLoss(), loader, -1, masks=masks)
    assert len(fine_tune(model, opt, CrossEntropyLoss(), loader, 2, masks=masks)) == 2
