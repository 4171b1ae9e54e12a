# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Module 16, given code: the bookkeeping of surgery, and dead units
#
# No task here. `remove_pruned_units` (the lesson, section 8) decides which units can
# go; this file holds the bookkeeping around that decision, exported to
# `tinytorch/compression/cutplan.py`: opening nested Sequentials into one list of
# layers, checking masks against a model, following a unit past the layers between
# two prunable ones (which layers it can follow at all, and how many inputs of the
# next layer belong to one unit after a Flatten), the masked copy, and slicing rows,
# columns and BatchNorm channels out of the arrays.
#
# `drop_dead_units` (`tinytorch/compression/deadunits.py`) zeroes hidden units that
# cannot change the output after unstructured pruning: a neuron whose outgoing weights
# are all zero, or whose incoming weights are all zero (its constant output goes into
# the next layer's bias). `prune_and_quantize` uses it so that those bytes are saved.

# %%
#| default_exp compression.cutplan

# %%
#| export
"""The bookkeeping of removing units: a model's layer sequence, the block a unit feeds, copies with rows and columns cut (given code)."""
import copy
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from tinytorch.compression.checks import check_model, param_name
from tinytorch.compression.maskbase import check_masks
from tinytorch.core.layers import GELU, Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor


def sequential_layers(model: Module, prefix: str = "") -> list[tuple[str, Module]]:
    """The layers of a (nested) Sequential in the order they run, with their dotted names.

    Nested Sequentials are opened up, so `Sequential(Sequential(a, b), c)` gives
    `[("0.0", a), ("0.1", b), ("1", c)]`; a model that is a single layer gives `[("", model)]`.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: some module other than a Sequential has children: its own `forward`
            decides how data flows, which this function cannot see.
    """
    check_model(model)
    if isinstance(model, Sequential):
        found = []
        for name, child in model.named_children():
            found += sequential_layers(child, param_name(prefix, name))
        return found
    if model.children():
        where = f"layer {prefix!r}" if prefix else "the model"
        raise ValueError(
            f"{where} is a {type(model).__name__} with sub-modules and its own forward(); units can "
            "only be followed through Sequential models (nested Sequentials are fine)")
    return [(prefix, model)]


class Cut(NamedTuple):
    """What removing units of one prunable layer touches, up to the next prunable layer."""

    keep: np.ndarray  # bool per output unit of the producer
    channels: list[BatchNorm2d]  # BatchNorms on the way that lose the same channels
    block: int  # consumer inputs per producer unit (H*W after a Flatten, else 1)


# %% [markdown]
# The rest is shared with the lesson's `surgery.py` but is no name for users: `#| exporti`
# keeps it out of `__all__`.

# %%
#| exporti
# Layers that act on each unit (or channel) alone and map 0 to exactly 0, so a unit that
# is zero before them is still zero after them. AvgPool2d is a MaxPool2d subclass; its
# zero padding keeps an all-zero channel at zero too.
_ZERO_STAYS_ZERO = (ReLU, Tanh, GELU, Dropout, MaxPool2d)
# Unit-wise, but 0 becomes something else (sigmoid(0) = 0.5): a removed unit would be missed.
ZERO_BECOMES_NONZERO = (Sigmoid,)


def consumer_block(layers: list[tuple[str, Module]], start: int, stop: int, keep: np.ndarray) -> int:
    """How many inputs of `layers[stop]` belong to one output unit of `layers[start]` (H*W after a Flatten).

    Also checks that removing the units `keep` drops is something the layers in between
    allow: nothing is checked when every unit stays.

    Raises:
        ValueError: units would be removed but a layer on the way cannot be followed (a
            Softmax, an unknown layer, a BatchNorm of another size), or the next layer
            does not take the units as its inputs.
    """
    name, producer = layers[start]
    consumer_name, consumer = layers[stop]
    units = producer.weight.data.shape[0]
    if keep.all():
        return 1
    image, flattened = isinstance(producer, Conv2d), False  # (N, C, H, W) until a Flatten

    def cannot_follow(layer_name: str, why: str) -> ValueError:
        return ValueError(f"cannot remove {int((~keep).sum())} pruned units of layer {name!r}: "
                          f"layer {layer_name!r} {why} (on the way to layer {consumer_name!r})")

    for layer_name, layer in layers[start + 1:stop]:
        if isinstance(layer, BatchNorm2d) and layer.num_features != units:
            raise cannot_follow(layer_name, f"normalises {layer.num_features} channels, not {units}")
        if isinstance(layer, Flatten):
            flattened, image = flattened or image, False
        elif isinstance(layer, Softmax):
            raise cannot_follow(layer_name, "is a Softmax: the units it normalises over would change")
        elif not isinstance(layer, (BatchNorm2d, *_ZERO_STAYS_ZERO, *ZERO_BECOMES_NONZERO)):
            raise cannot_follow(layer_name, f"is a {type(layer).__name__}, which it does not know how to follow")
    if isinstance(consumer, Conv2d) and image and consumer.in_channels == units:
        return 1
    if isinstance(consumer, Linear) and flattened and consumer.in_features % units == 0:
        return consumer.in_features // units  # channel c is features [c*H*W, (c+1)*H*W)
    if isinstance(consumer, Linear) and not image and not flattened and consumer.in_features == units:
        return 1
    raise ValueError(f"cannot remove {int((~keep).sum())} pruned units of layer {name!r}: the next "
                     f"layer {consumer_name!r} ({type(consumer).__name__} with weight "
                     f"{consumer.weight.data.shape}) does not take its {units} units as its inputs")


def masked_copy(model: Module, masks: Mapping) -> Module:
    """A deep copy of `model` whose parameters are new arrays with `masks` applied (one copy of the weights).

    Raises:
        ValueError: masks that do not fit the model, or one layer object used twice.
    """
    check_masks(model, masks)
    seen: dict[int, str] = {}
    for name, layer in sequential_layers(model):  # fail before copying anything
        if layer.parameters() + layer.buffers() and seen.setdefault(id(layer), name) != name:
            raise ValueError(f"layer {name!r} is the same object as layer {seen[id(layer)]!r}: a layer used "
                             "twice would have to lose units for both uses at once")
    # NOTE: the memo makes deepcopy share the parameter arrays instead of copying them
    # and drop the gradients (they have the old shapes); every parameter of the copy
    # then gets a new array of its own, masked: one copy of the weights, not two.
    memo = {}
    for param in model.parameters():
        memo[id(param.data)] = param.data
        if param.grad is not None:
            memo[id(param.grad)] = None
    new = copy.deepcopy(model, memo)
    for name, param in new.named_parameters():
        param.data = param.data * masks[name] if name in masks else param.data.copy()
    return new


def _replace(layer: Module, attr: str, data: np.ndarray) -> None:
    # A new Tensor (never a view into the old one), with the old one's requires_grad.
    setattr(layer, attr, Tensor(np.ascontiguousarray(data), requires_grad=getattr(layer, attr).requires_grad))


# NOTE: np.compress along an axis gives a new C-ordered array; boolean indexing of
# columns (w[:, keep]) gives one in another order, and with the copy to C order it
# takes over ten times longer on a 1024 x 2048 weight.
def keep_outputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", np.compress(keep, layer.weight.data, axis=0))
    if layer.bias is not None:
        _replace(layer, "bias", np.compress(keep, layer.bias.data))
    setattr(layer, "out_features" if isinstance(layer, Linear) else "out_channels", int(keep.sum()))


def keep_inputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", np.compress(keep, layer.weight.data, axis=1))
    setattr(layer, "in_features" if isinstance(layer, Linear) else "in_channels", int(keep.sum()))


def keep_channels(norm: BatchNorm2d, keep: np.ndarray) -> None:
    for attr in ("weight", "bias", "running_mean", "running_var"):
        _replace(norm, attr, getattr(norm, attr).data[keep])
    norm.num_features = int(keep.sum())


# %%
#| export compression.deadunits
"""Zero the weights of units that cannot change the output (their activation is always zero) (given code)."""
import numpy as np

from tinytorch.compression.checks import check_model
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor

_ELEMENTWISE = ("ReLU", "Sigmoid", "Tanh", "GELU", "Dropout")


def _linear_chains(model: Module) -> list[tuple[Module, list[Module], Module]]:
    """(Linear, [element-wise layers], Linear) runs among the children of each module."""
    found = []
    for _, parent in model.named_modules():
        layers = list(parent.children())
        for i, first in enumerate(layers):
            if not isinstance(first, Linear):
                continue
            between = []
            for nxt in layers[i + 1:]:
                if isinstance(nxt, Linear):
                    found.append((first, between, nxt))
                    break
                if type(nxt).__name__ not in _ELEMENTWISE:
                    break
                between.append(nxt)
    return found


def drop_dead_units(model: Module) -> int:
    """Zero the weights of hidden units that cannot change the output; returns how many.

    A unit with no outgoing weights loses its incoming weights and bias; a unit with no
    incoming weights has its constant output folded into the next layer's bias.
    Only Linear layers of one Sequential joined by element-wise layers are touched.
    """
    check_model(model)
    before = sum(int(np.count_nonzero(p.data)) for p in model.parameters())
    changed = True
    while changed:
        changed = False
        for first, between, second in _linear_chains(model):
            w1, w2 = first.weight.data, second.weight.data
            dead_out = ~np.any(w2, axis=0)
            dead_in = ~np.any(w1, axis=1) & ~dead_out
            if first.bias is None or second.bias is None:
                dead_in[:] = False
            if np.any(dead_in):
                constant = Tensor(first.bias.data[dead_in][None, :])
                with no_grad():
                    for layer in between:
                        was = layer.training
                        layer.eval()
                        constant = layer(constant)
                        layer.train(was)
                second.bias.data += w2[:, dead_in] @ constant.data[0]
                w2[:, dead_in] = 0.0
                first.bias.data[dead_in] = 0.0
                changed = True
            alive = np.any(w1, axis=1) if first.bias is None else np.any(w1, axis=1) | (first.bias.data != 0)
            kill = dead_out & alive
            if np.any(kill):
                w1[kill] = 0.0
                if first.bias is not None:
                    first.bias.data[kill] = 0.0
                changed = True
    return before - sum(int(np.count_nonzero(p.data)) for p in model.parameters())
