"""Module 02, tasks 02.1-02.3: the Module base class (attribute walk, parameters and
buffers with PyTorch's dotted names, modes, state_dict round trips and their errors)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.activations import Module, ReLU
from tinytorch.core.tensor import Tensor


def param(*shape: int, fill: float = 0.0) -> Tensor:
    return Tensor(np.full(shape, fill, dtype=np.float32), requires_grad=True)


class Leaf(Module):
    def __init__(self, n: int = 3):
        super().__init__()
        self.weight = param(n, 2, fill=1.0)
        self.bias = param(n)
        self.running = Tensor(np.zeros(n, dtype=np.float32))  # a buffer
        self.note = "not a tensor"  # ignored by the walk


class Tree(Module):
    def __init__(self):
        super().__init__()
        self.scale = param(1)
        self.first = Leaf()
        self.blocks = [Leaf(2), ReLU(), Leaf(4)]
        self.pair = (Leaf(1),)
        self.last = Leaf(5)


class NoInit(Module):  # forgets super().__init__(): must still work
    def __init__(self):
        self.inner = Leaf()


# --- 02.1 the walk -------------------------------------------------------------------
@pytest.mark.task("02.1")
def test_named_modules_depth_first_self_first():
    names = [name for name, _ in Tree().named_modules()]
    assert names == ["", "first", "blocks.0", "blocks.1", "blocks.2", "pair.0", "last"]


@pytest.mark.task("02.1")
def test_children_are_direct_only_and_modules_lists_everything():
    tree = Tree()
    assert [n for n, _ in tree.named_children()] == ["first", "blocks.0", "blocks.1", "blocks.2", "pair.0", "last"]
    assert tree.children()[0] is tree.first
    assert tree.modules()[0] is tree and len(tree.modules()) == 7


@pytest.mark.task("02.1")
def test_shared_module_is_visited_once_under_its_first_name():
    tree = Tree()
    tree.again = tree.first
    named = tree.named_modules()
    assert [n for n, m in named if m is tree.first] == ["first"]


@pytest.mark.task("02.1")
def test_nested_names_are_dotted_paths():
    outer = Module()
    outer.body = Tree()
    names = [n for n, _ in outer.named_modules()]
    assert "body.blocks.2" in names and "body.pair.0" in names


# --- 02.2 parameters, buffers, modes --------------------------------------------------
@pytest.mark.task("02.2")
def test_parameter_names_and_order_follow_pytorch():
    names = [n for n, _ in Tree().named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "blocks.0.weight", "blocks.0.bias",
                     "blocks.2.weight", "blocks.2.bias", "pair.0.weight", "pair.0.bias",
                     "last.weight", "last.bias"]
    assert [n for n, _ in Tree().named_buffers()] == ["first.running", "blocks.0.running", "blocks.2.running",
                                                      "pair.0.running", "last.running"]


@pytest.mark.task("02.2")
def test_names_match_torch_for_the_same_structure():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TLeaf(nn.Module):
        def __init__(self, n=3):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n, 2))
            self.bias = nn.Parameter(torch.zeros(n))
            self.register_buffer("running", torch.zeros(n))

    class TTree(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.zeros(1))
            self.first = TLeaf()
            self.blocks = nn.ModuleList([TLeaf(2), nn.ReLU(), TLeaf(4)])
            self.pair = nn.ModuleList([TLeaf(1)])
            self.last = TLeaf(5)

    ours, theirs = Tree(), TTree()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    # PyTorch lists the ModuleList itself as a module; TinyTorch's plain list is not one.
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()
                                                    if n not in ("blocks", "pair")]


@pytest.mark.task("02.2")
def test_shared_parameter_is_listed_once():
    tree = Tree()
    tree.last.weight = tree.first.weight
    params = tree.parameters()
    assert len(params) == len({id(p) for p in params}) == 10


@pytest.mark.task("02.2")
def test_replacing_an_attribute_replaces_the_parameter():
    tree = Tree()
    new = param(3, 2, fill=7.0)
    tree.first.weight = new
    assert dict(tree.named_parameters())["first.weight"] is new


def test_train_eval_reach_every_module_and_return_self():
    tree = Tree()
    assert tree.eval() is tree
    assert all(not m.training for m in tree.modules())
    assert tree.train() is tree and all(m.training for m in tree.modules())
    tree.train(False)
    assert not tree.blocks[1].training


@pytest.mark.task("02.2")
def test_zero_grad_clears_every_gradient():
    tree = Tree()
    for p in tree.parameters():
        p.grad = np.ones_like(p.data)
    tree.zero_grad()
    assert all(p.grad is None for p in tree.parameters())


@pytest.mark.task("02.2")
def test_subclass_without_super_init_still_works():
    model = NoInit()
    assert model.training is True
    assert [n for n, _ in model.named_parameters()] == ["inner.weight", "inner.bias"]
    model.eval()
    assert model.training is False and model.inner.training is False


def test_forward_must_be_defined_and_call_runs_it():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        Module()(1)

    class Double(Module):
        def forward(self, x):
            return 2 * x

    assert Double()(3) == 6


def test_repr_shows_the_tree():
    text = repr(Tree())
    assert "(first): Leaf()" in text and "(blocks.1): ReLU()" in text


# --- 02.3 state_dict ------------------------------------------------------------------
@pytest.mark.task("02.3")
def test_state_dict_holds_copies_of_parameters_and_buffers():
    tree = Tree()
    state = tree.state_dict()
    assert set(state) == {n for n, _ in tree.named_parameters()} | {n for n, _ in tree.named_buffers()}
    tree.first.weight.data += 1
    assert state["first.weight"][0, 0] == 1.0
    assert all(isinstance(v, np.ndarray) for v in state.values())


@pytest.mark.task("02.3")
def test_load_state_dict_writes_in_place():
    source, target = Tree(), Tree()
    rng = np.random.default_rng(0)
    for p in source.parameters() + source.buffers():
        p.data[...] = rng.normal(size=p.shape)
    tensors_before = target.parameters() + target.buffers()
    target.load_state_dict(source.state_dict())
    assert target.parameters() + target.buffers() == tensors_before  # same objects
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.task("02.3")
def test_load_state_dict_rejects_a_wrong_shape_and_changes_nothing():
    tree = Tree()
    state = {k: v + 1 for k, v in tree.state_dict().items()}
    state["last.bias"] = np.zeros(6, dtype=np.float32)
    before = tree.state_dict()
    with pytest.raises(ValueError, match=r"last\.bias.*\(6,\).*\(5,\)"):
        tree.load_state_dict(state)
    for name, value in tree.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed by a failed load")


@pytest.mark.task("02.3")
def test_load_state_dict_names_missing_and_unexpected_keys():
    tree = Tree()
    state = tree.state_dict()
    del state["first.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['first.bias'\].*unexpected keys \['extra'\]"):
        tree.load_state_dict(state)


@pytest.mark.task("02.3")
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_state_dict_round_trip_is_exact(sizes, seed):
    """Save, then load into a fresh model: every array equal, bit for bit."""
    rng = np.random.default_rng(seed)
    source, target = Module(), Module()
    source.layers = [Leaf(n) for n in sizes]
    target.layers = [Leaf(n) for n in sizes]
    for t in source.parameters() + source.buffers():
        t.data[...] = rng.normal(size=t.shape)
    target.load_state_dict(source.state_dict())
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[name], value)
