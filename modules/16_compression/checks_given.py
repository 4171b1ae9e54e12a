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
# # Module 16, given code: argument checks and what can be pruned
#
# No task here. Every public function of Module 16 checks its arguments before it
# changes anything, with a message that names the argument, the value given and what
# is allowed. The checks live in one place, this file, exported to
# `tinytorch/compression/checks.py`, so that every function words them alike. Also
# here: which layers can be pruned, how `magnitude_prune` groups them (all together,
# one by one, or as a `{layer: sparsity}` dict names them), and which BatchNorm2d
# follows a conv (structured pruning zeroes its channel too).

# %%
#| default_exp compression.checks

# %%
#| export
"""Argument checks of Module 16 and which layers can be pruned, how they are grouped, which BatchNorm follows a conv (given code)."""
from collections.abc import Mapping

import numpy as np

from tinytorch.core.checks import check_finite, check_fraction, check_instance, check_int
from tinytorch.core.layers import Linear, Module
from tinytorch.core.spatial import BatchNorm2d, Conv2d

_PRUNABLE = (Linear, Conv2d)


def prunable_layers(model: Module) -> list[tuple[str, Module]]:
    """The `(name, layer)` pairs of every Linear and Conv2d in `model`, in model order.

    A model that is itself a Linear or Conv2d gives `[("", model)]`.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: the model has no Linear or Conv2d layer.
    """
    check_model(model)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _PRUNABLE)]
    if not layers:
        kinds = sorted({type(m).__name__ for _, m in model.named_modules()})
        raise ValueError(f"model has no Linear or Conv2d layer to prune (it has: {', '.join(kinds)})")
    return layers


# %% [markdown]
# The functions below are shared by Module 16's files, not names for users: `#| exporti`
# exports them without listing them in the file's `__all__`, so the package's
# `__init__` need not re-export them.

# %%
#| exporti
def check_model(model: object, name: str = "model") -> Module:
    """`model` itself, after checking it is a tinytorch Module."""
    return check_instance(name, model, Module, "a tinytorch Module")


def check_schedule(step, steps, final, initial, kind) -> tuple[int, float, float]:
    """The arguments of `sparsity_schedule`, checked: (steps, final, initial)."""
    steps = check_int("steps", steps, 1)
    check_int("step", step, 0, steps)
    final, initial = check_fraction("final", final), check_fraction("initial", initial)
    if kind not in ("cubic", "linear"):
        raise ValueError(f"kind must be 'cubic' or 'linear', got {kind!r}")
    return steps, final, initial


def check_callable(name: str, value: object, usage: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable as {usage}{' or None' if optional else ''}, "
                        f"got {value!r} ({type(value).__name__})")


def check_optimizer(optimizer: object, params: dict | None = None) -> None:
    """An optimizer of Module 06 (it has `params` and a post-step hook) that updates every Tensor of `params`."""
    if not (hasattr(optimizer, "params") and hasattr(optimizer, "register_step_post_hook")):
        raise TypeError("optimizer must be a tinytorch optimizer (SGD, Adam, AdamW), "
                        f"got {optimizer!r} ({type(optimizer).__name__})")
    owned = {id(p) for p in optimizer.params}
    missing = [name for name, p in (params or {}).items() if id(p) not in owned]
    if missing:
        raise ValueError(f"optimizer does not update these parameters of the model: {', '.join(missing[:5])} "
                         "(make it with SGD(model.parameters(), ...) for this model)")


def param_name(layer: str, attr: str) -> str:
    """The parameter's name as `named_parameters` gives it ("0.weight"; "weight" for the model itself)."""
    return f"{layer}.{attr}" if layer else attr


def _layer_label(name: str) -> str:
    return repr(name) if name else "(the model itself)"




def prunable_params(model: Module, structured: bool) -> dict:
    """What pruning may mask, by parameter name: every parameter (structured), else the prunable weights."""
    if structured:
        return dict(model.named_parameters())
    return {param_name(name, "weight"): layer.weight for name, layer in prunable_layers(model)}


def check_finite_layers(layers: list[tuple[str, Module]], biases: bool = False) -> None:
    """Refuse a NaN or infinite weight (and bias, with `biases`) of any layer, naming it.

    Magnitude ranks |w|: a NaN has no rank and an inf always survives; a norm, a scale or
    a k-means centroid that meets one becomes NaN itself. (Find where training diverged.)
    """
    for name, layer in layers:
        check_finite(f"layer {_layer_label(name)} weight", layer.weight.data)
        if biases and getattr(layer, "bias", None) is not None:
            check_finite(f"layer {_layer_label(name)} bias", layer.bias.data)


def check_finite_model(model: Module) -> None:
    """Refuse a NaN or infinite weight or bias of any Linear or Conv2d of `model`, naming the layer."""
    check_finite_layers([(name, m) for name, m in model.named_modules() if isinstance(m, _PRUNABLE)], biases=True)


def checked_state(name: str, state: object) -> dict[str, np.ndarray] | None:
    """A copy of the state dict `state` (None stays None), every value real, finite and within float32's range."""
    if state is None:
        return None
    if not isinstance(state, Mapping):
        raise TypeError(f"{name} must be a state dict (name -> array) or None, got {type(state).__name__}")
    return {k: check_finite(f"{name}[{k!r}]", v, float32=True).copy() for k, v in state.items()}


def check_sizes(sizes: object) -> dict[str, int]:
    """`{layer name: number of weights}` checked: a dict of ints >= 0 that are not all 0."""
    check_instance("sizes", sizes, Mapping, "a dict {layer name: number of weights}")
    counts = {name: check_int(f"sizes[{name!r}]", n, 0) for name, n in sizes.items()}
    if not sum(counts.values()):
        raise ValueError(f"sizes must give at least one layer a number of weights > 0, got {dict(sizes)!r:.80}")
    return counts


def _resolve_layer_sparsities(layers: list[tuple[str, Module]], sparsity: Mapping) -> dict[str, float]:
    names = {name: name for name, _ in layers} | {param_name(name, "weight"): name for name, _ in layers}
    chosen, keys = {}, {}
    for key, value in sparsity.items():
        if key not in names:
            raise ValueError(f"sparsity names layer {key!r}, which is not a Linear/Conv2d of this model "
                             f"(prunable layers: {', '.join(n for n, _ in layers)})")
        if names[key] in keys:
            raise ValueError(f"sparsity names layer {_layer_label(names[key])} twice, as {keys[names[key]]!r} "
                             f"and {key!r}: give one sparsity per layer")
        keys[names[key]] = key
        chosen[names[key]] = check_fraction(f"sparsity[{key!r}]", value)
    return chosen


def ranking_groups(layers, sparsity, scope: str) -> list[tuple[list[str], float]]:
    """(layer names ranked together, their sparsity) for each group; checks `sparsity` and `scope`."""
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    if isinstance(sparsity, Mapping):
        per_layer = _resolve_layer_sparsities(layers, sparsity)
        return [([name], per_layer[name]) for name, _ in layers if name in per_layer]
    sparsity = check_fraction("sparsity", sparsity)
    names = [name for name, _ in layers]
    return [(names, sparsity)] if scope == "global" else [([n], sparsity) for n in names]


def following_batchnorm(model: Module) -> dict[str, str]:
    """For each Conv2d, the name of the BatchNorm2d that comes next (before the next prunable layer)."""
    found, pending = {}, None
    for name, m in model.named_modules():
        if isinstance(m, _PRUNABLE):
            pending = (name, m) if isinstance(m, Conv2d) else None
        elif isinstance(m, BatchNorm2d) and pending is not None:
            if m.weight.data.shape[0] == pending[1].weight.data.shape[0]:
                found[pending[0]] = name
            pending = None
    return found
