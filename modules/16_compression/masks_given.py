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
# # Module 16, given code: the bookkeeping of a set of masks
#
# No task here. A `Masks` object maps parameter names to boolean keep-masks and is
# bound to one model. Checking the names and shapes, the mapping methods, the
# sparsity, and combining two sets live here (`tinytorch/compression/maskbase.py`);
# the lesson writes what masks *do*: `apply` and `attach`.
#
# `fine_tune` (`tinytorch/compression/finetune.py`) is Module 07's `fit` with the masks
# attached for its duration, its arguments checked before anything changes.

# %%
#| default_exp compression.maskbase

# %%
#| export
"""The bookkeeping of a Masks object: names, shapes and checks of the keep-masks it holds (given code)."""
from collections.abc import Iterator, Mapping

import numpy as np

from tinytorch.compression.checks import check_model
from tinytorch.core.checks import check_instance


class MaskBase(Mapping):
    """Parameter name -> boolean keep-mask, bound to the model it was made for (checked on creation)."""

    def __init__(self, model, masks: Mapping[str, np.ndarray]):
        self._masks = check_masks(model, masks)
        self.model = model

    def __getitem__(self, name: str) -> np.ndarray:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    @property
    def sparsity(self) -> float:
        """Fraction of masked `.weight` entries that are pruned."""
        weights = [m for n, m in self._masks.items() if n.endswith("weight")] or list(self._masks.values())
        total = sum(m.size for m in weights)
        return 1.0 - sum(int(np.count_nonzero(m)) for m in weights) / total if total else 0.0

    def _tensors(self) -> list[tuple[object, np.ndarray]]:
        """(parameter Tensor, keep-mask) pairs; refuses a model whose parameters changed shape."""
        params = dict(self.model.named_parameters())
        missing = [n for n in self._masks if n not in params or params[n].data.shape != self._masks[n].shape]
        if missing:
            raise ValueError(f"the model no longer matches these masks (changed: {', '.join(missing)})")
        return [(params[n], m) for n, m in self._masks.items()]

    def __and__(self, other: Mapping) -> "MaskBase":
        """Entries kept by both (a parameter masked in one only keeps that mask)."""
        merged = dict(self._masks)
        for name, mask in other.items():
            merged[name] = merged[name] & mask if name in merged else mask
        return type(self)(self.model, merged)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} parameters, sparsity={self.sparsity:.1%})"


# %% [markdown]
# One check of keep-masks against a model, for `Masks` and for the unit removal of
# section 8 alike; shared, not a name for users (`#| exporti`).

# %%
#| exporti
def check_masks(model, masks: Mapping) -> dict[str, np.ndarray]:
    """`masks` as a dict of bool arrays, after checking each names a parameter of `model` and has its shape.

    Raises:
        TypeError: `model` is not a Module, or `masks` is not a mapping.
        ValueError: masks that do not fit the model, each mismatch named beside the model's parameters.
    """
    params = dict(check_model(model).named_parameters())
    check_instance("masks", masks, Mapping, "a Masks or a mapping of parameter name -> bool keep-mask")
    checked, wrong = {}, []
    for name, mask in masks.items():
        checked[name] = mask = np.asarray(mask)
        if name not in params:
            wrong.append(f"{name!r} is not a parameter of this model")
        elif mask.dtype != np.bool_ or mask.shape != params[name].data.shape:
            wrong.append(f"{name!r} is {mask.dtype} {mask.shape}, not bool {params[name].data.shape}")
    if wrong:
        shown = ", ".join(f"{n} {p.data.shape}" for n, p in list(params.items())[:8])
        raise ValueError(f"these masks were not made for this model: {'; '.join(wrong[:4])} "
                         f"(the model's parameters: {shown}{', ...' if len(params) > 8 else ''})")
    return checked


# %%
#| exporti compression.finetune
"""Fine-tuning with masks attached: Module 07's loop with pruned weights held at zero (given code)."""
from tinytorch.compression.checks import check_callable, check_model, check_optimizer
from tinytorch.compression.maskbase import MaskBase
from tinytorch.core.checks import check_instance, check_int
from tinytorch.core.layers import Module
from tinytorch.core.training import fit


def check_training(model: Module, optimizer, loss_fn, loader, masks=None, params: dict | None = None) -> None:
    """The arguments of a training loop: the optimizer must update `params` (default: the masked ones)."""
    check_model(model)
    if params is None:
        params = {n: p for n, p in model.named_parameters() if masks is not None and n in masks}
    check_optimizer(optimizer, params)
    check_callable("loss_fn", loss_fn, "loss_fn(output, targets) -> Tensor")
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"loader must be an iterable of (inputs, targets) batches, got {type(loader).__name__}")
    if masks is not None:
        check_instance("masks", masks, MaskBase, "a Masks (from magnitude_prune, structured_prune) or None")


# %%
#| export compression.finetune
def fine_tune(model: Module, optimizer, loss_fn, loader, epochs: int, masks: MaskBase | None = None,
              progress: bool | None = None) -> list[dict]:
    """Train `model` with `tinytorch.core.training.fit`, keeping `masks` applied after every step.

    Args:
        model, optimizer, loss_fn, loader, epochs: as for `fit`; 0 epochs trains nothing.
        masks: keep-masks to hold (attached for the duration, removed afterwards).
        progress: show a progress bar (default: only on a terminal).

    Returns:
        `fit`'s history, one row per epoch.
    """
    check_training(model, optimizer, loss_fn, loader, masks)
    if check_int("epochs", epochs, 0) == 0:
        return []  # nothing to train: the model, the optimizer and the masks stay as they are
    handle = masks.attach(optimizer) if masks is not None else None
    try:
        return fit(model, optimizer, loss_fn, loader, epochs, progress=progress)
    finally:
        if handle is not None:
            handle.remove()
