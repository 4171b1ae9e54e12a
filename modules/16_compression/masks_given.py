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


class MaskBase(Mapping):
    """Parameter name -> boolean keep-mask, bound to the model it was made for (checked on creation)."""

    def __init__(self, model, masks: Mapping[str, np.ndarray]):
        params = dict(check_model(model).named_parameters())
        if not isinstance(masks, Mapping):
            raise TypeError(f"masks must be a mapping of parameter name -> bool keep-mask, got {masks!r} "
                            f"({type(masks).__name__})")
        checked = {}
        for name, mask in masks.items():
            if name not in params:
                raise ValueError(f"mask names parameter {name!r}, which this model does not have "
                                 f"(it has {', '.join(params)})")
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != params[name].data.shape:
                raise ValueError(f"mask for {name!r} must be bool of shape {params[name].data.shape}, "
                                 f"got {mask.dtype} {mask.shape}")
            checked[name] = mask
        self.model = model
        self._masks = checked

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
        model, optimizer, loss_fn, loader, epochs: as for `fit`.
        masks: keep-masks to hold (attached for the duration, removed afterwards).
        progress: show a progress bar (default: only on a terminal).

    Returns:
        `fit`'s history, one row per epoch.
    """
    check_training(model, optimizer, loss_fn, loader, masks)
    check_int("epochs", epochs, 0)
    handle = masks.attach(optimizer) if masks is not None else None
    try:
        return fit(model, optimizer, loss_fn, loader, epochs, progress=progress)
    finally:
        if handle is not None:
            handle.remove()
