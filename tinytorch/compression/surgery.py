import copy
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from tinytorch.compression.prune import Masks, prunable_layers
from tinytorch.core.layers import GELU, Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor

# Layers that act on each unit (or channel) alone and map 0 to exactly 0, so a unit that
# is zero before them is still zero after them. AvgPool2d is a MaxPool2d subclass; its
# zero padding keeps an all-zero channel at zero too.
_ZERO_STAYS_ZERO = (ReLU, Tanh, GELU, Dropout, MaxPool2d)
# Unit-wise, but 0 becomes something else (sigmoid(0) = 0.5): a removed unit would be missed.
_ZERO_BECOMES_NONZERO = (Sigmoid,)


def _param(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def sequential_layers(model: Module, prefix: str = "") -> list[tuple[str, Module]]:
    """The layers of a (nested) Sequential in the order they run, with their dotted names.

    Nested Sequentials are opened up, so `Sequential(Sequential(a, b), c)` gives
    `[("0.0", a), ("0.1", b), ("1", c)]`; a model that is a single layer gives `[("", model)]`.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: some module other than a Sequential has children: its own `forward`
            decides how data flows, which this function cannot see.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    if isinstance(model, Sequential):
        found = []
        for name, child in model.named_children():
            found += sequential_layers(child, _param(prefix, name))
        return found
    if model.children():
        where = f"layer {prefix!r}" if prefix else "the model"
        raise ValueError(
            f"{where} is a {type(model).__name__} with sub-modules and its own forward(); units can "
            "only be followed through Sequential models (nested Sequentials are fine)")
    return [(prefix, model)]


def _check_masks(model: Module, masks: Mapping) -> None:
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a Masks (parameter name -> bool keep-mask), got {type(masks).__name__}")
    params = dict(model.named_parameters())
    wrong = []
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if name not in params:
            wrong.append(f"{name!r} is not a parameter of this model")
        elif mask.dtype != np.bool_ or mask.shape != params[name].data.shape:
            wrong.append(f"{name!r} is {mask.dtype} {mask.shape}, the parameter is {params[name].data.shape}")
    if wrong:
        shown = ", ".join(f"{n} {p.data.shape}" for n, p in list(params.items())[:8])
        raise ValueError(f"these masks were not made for this model: {'; '.join(wrong[:4])} "
                         f"(the model's parameters: {shown}{', ...' if len(params) > 8 else ''})")


class Cut(NamedTuple):
    """What removing units of one prunable layer touches, up to the next prunable layer."""

    keep: np.ndarray  # bool per output unit of the producer
    channels: list[BatchNorm2d]  # BatchNorms on the way that lose the same channels
    block: int  # consumer inputs per producer unit (H*W after a Flatten, else 1)


def plan_cut(layers: list[tuple[str, Module]], start: int, stop: int, masks: Mapping) -> Cut:
    """Which output units of `layers[start]` can go, given the layers up to `layers[stop]`. Task 16.13

    A unit can go only if what it sends to the next prunable layer is exactly zero for
    every input: its whole weight row is pruned in `masks`, its bias is 0, a
    BatchNorm2d on the way has scale and shift 0 for its channel, and every layer on
    the way maps 0 to 0 (ReLU, Tanh, GELU, Dropout, pooling, Flatten). A Sigmoid on the
    way sends 0.5 instead, so its units all stay. At least one unit always stays.

    Args:
        layers: `sequential_layers` of a model whose parameters already have the masks applied.
        start: index of the producer (a Linear or Conv2d) in `layers`.
        stop: index of the next Linear or Conv2d (the consumer of the producer's units).
        masks: parameter name -> bool keep-mask.

    Returns:
        A `Cut`: the keep-mask, the BatchNorms that lose the same channels, and how many
        consumer inputs belong to one unit (a Flatten turns one channel into H*W features).

    Raises:
        ValueError: units would be removed but a layer on the way is one it cannot follow
            (a Softmax, an unknown layer, a Flatten after a Linear, shapes that do not match).
    """
    name, producer = layers[start]
    consumer_name, consumer = layers[stop]
    units = producer.weight.data.shape[0]
    channels: list[BatchNorm2d] = []
    ### BEGIN SOLUTION
    weight_mask = masks.get(_param(name, "weight"))
    if weight_mask is None:
        removable = np.zeros(units, dtype=bool)
    else:
        removable = ~np.asarray(weight_mask).reshape(units, -1).any(axis=1)
    if producer.bias is not None:
        removable &= producer.bias.data == 0
    image = isinstance(producer, Conv2d)  # (N, C, H, W) until a Flatten
    flattened = False

    def cannot_follow(layer_name: str, why: str) -> ValueError:
        return ValueError(f"cannot remove {int(removable.sum())} pruned units of layer {name!r}: "
                          f"layer {layer_name!r} {why} (on the way to layer {consumer_name!r})")

    for layer_name, layer in layers[start + 1:stop]:
        if isinstance(layer, BatchNorm2d):
            if layer.num_features != units:
                if removable.any():
                    raise cannot_follow(layer_name, f"normalises {layer.num_features} channels, not {units}")
                continue
            removable &= (layer.weight.data == 0) & (layer.bias.data == 0)
            channels.append(layer)
        elif isinstance(layer, Flatten):
            flattened = flattened or image
            image = False
        elif isinstance(layer, _ZERO_BECOMES_NONZERO):
            removable[:] = False  # NOTE: the consumer would see sigmoid(0) = 0.5 from a removed unit
        elif isinstance(layer, Softmax) and removable.any():
            raise cannot_follow(layer_name, "is a Softmax: the units it normalises over would change")
        elif not isinstance(layer, _ZERO_STAYS_ZERO) and removable.any():
            raise cannot_follow(layer_name, f"is a {type(layer).__name__}, which it does not know how to follow")

    block = 1
    if removable.any():
        if isinstance(consumer, Conv2d) and image and consumer.in_channels == units:
            block = 1
        elif isinstance(consumer, Linear) and flattened and consumer.in_features % units == 0:
            block = consumer.in_features // units  # channel c is features [c*H*W, (c+1)*H*W)
        elif isinstance(consumer, Linear) and not image and not flattened and consumer.in_features == units:
            block = 1
        else:
            raise ValueError(f"cannot remove {int(removable.sum())} pruned units of layer {name!r}: the next "
                             f"layer {consumer_name!r} ({type(consumer).__name__} with weight "
                             f"{consumer.weight.data.shape}) does not take its {units} units as its inputs")
    keep = ~removable
    if not keep.any():
        keep[0] = True  # an all-zero unit keeps the layer valid and changes no output
    ### END SOLUTION
    return Cut(keep, channels, block)


def _replace(layer: Module, attr: str, data: np.ndarray) -> None:
    # A new Tensor (never a view into the old one), with the old one's requires_grad.
    setattr(layer, attr, Tensor(np.ascontiguousarray(data), requires_grad=getattr(layer, attr).requires_grad))


def _keep_outputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", layer.weight.data[keep])
    if layer.bias is not None:
        _replace(layer, "bias", layer.bias.data[keep])
    setattr(layer, "out_features" if isinstance(layer, Linear) else "out_channels", int(keep.sum()))


def _keep_inputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", layer.weight.data[:, keep])
    setattr(layer, "in_features" if isinstance(layer, Linear) else "in_channels", int(keep.sum()))


def _keep_channels(norm: BatchNorm2d, keep: np.ndarray) -> None:
    for attr in ("weight", "bias", "running_mean", "running_var"):
        _replace(norm, attr, getattr(norm, attr).data[keep])
    norm.num_features = int(keep.sum())


def remove_pruned_units(model: Module, masks: Masks | Mapping[str, np.ndarray]) -> Sequential:
    """A physically smaller copy of `model` without the units that `masks` pruned away. Task 16.14

    Removing output unit j of a Linear/Conv2d also removes input j of the next one
    (a block of H*W inputs after a Flatten) and channel j of a BatchNorm2d on the way.
    The copy computes the same outputs as the masked model: a unit whose output is
    not exactly zero stays (see `plan_cut`), and the last Linear/Conv2d keeps all
    its outputs (the classes). Layers with nothing removed are copied unchanged,
    nested Sequentials are flattened into one, and `model` itself is not changed.

    Args:
        model: a Sequential (nested ones allowed) of Linear, Conv2d, BatchNorm2d,
            activations, Dropout, pooling and Flatten layers.
        masks: keep-masks of `model`'s parameters, e.g. from `structured_prune`.

    Returns:
        A new Sequential with new parameter arrays: train it with a new optimizer.

    Raises:
        TypeError: `model` is not a Module, or `masks` not a mapping.
        ValueError: masks that do not fit the model's parameters, a model that is not
            a Sequential, or a layer it cannot follow between two pruned layers.
    """
    prunable_layers(model)  # the TypeError for non-Modules, the ValueError for nothing to prune
    _check_masks(model, masks)
    seen: dict[int, str] = {}
    for name, layer in sequential_layers(model):  # fail before copying anything
        if layer.parameters() + layer.buffers() and seen.setdefault(id(layer), name) != name:
            raise ValueError(f"layer {name!r} is the same object as layer {seen[id(layer)]!r}: a layer used "
                             "twice would have to lose units for both uses at once")
    new = copy.deepcopy(model)
    for name, param in new.named_parameters():
        param.grad = None  # old gradients have the old shapes
        if name in masks:
            param.data = param.data * masks[name]  # the masked model, whether or not masks were applied
    layers = sequential_layers(new)
    ### BEGIN SOLUTION
    positions = [i for i, (_, layer) in enumerate(layers) if isinstance(layer, (Linear, Conv2d))]
    cuts = [(i, j, plan_cut(layers, i, j, masks)) for i, j in zip(positions, positions[1:])]
    for i, j, cut in cuts:  # all plans are made on the unchanged copy first
        if cut.keep.all():
            continue
        _keep_outputs(layers[i][1], cut.keep)
        for norm in cut.channels:
            _keep_channels(norm, cut.keep)
        _keep_inputs(layers[j][1], np.repeat(cut.keep, cut.block))
    ### END SOLUTION
    smaller = Sequential(*[layer for _, layer in layers])
    smaller.training = model.training
    return smaller
