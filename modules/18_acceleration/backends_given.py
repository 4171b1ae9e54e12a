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
# # Module 18, given code: backends and model plumbing
#
# This file is part of Module 18 but holds no task. It is the bookkeeping behind
# `SparseLinear` and `to_sparse`: which CSR kernels exist on this machine (scipy's
# compiled ones, or the NumPy product you write in the lesson), finding the Linear
# layers of a model by name, and putting a new layer where an old one was.
# `tito export 18` exports it with the lesson into `tinytorch/acceleration/backends.py`.

# %%
#| default_exp acceleration.backends

# %%
#| export
from __future__ import annotations

from tinytorch.core.layers import Linear, Module

try:  # scipy is the optional extra `tinytorch[sparse]`; without it the NumPy path runs
    import scipy.sparse as scipy_sparse
except ImportError:  # pragma: no cover - depends on what is installed
    scipy_sparse = None

BACKENDS = ("scipy", "numpy")


def default_backend() -> str:
    """`"scipy"` when scipy is installed (`pip install tinytorch[sparse]`), else `"numpy"`."""
    return "numpy" if scipy_sparse is None else "scipy"


def check_backend(backend: str | None) -> str:
    """The backend to use for `backend` (None: the default), or a ValueError naming the choices."""
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "scipy" and scipy_sparse is None:
        raise ValueError("backend 'scipy' needs scipy (pip install tinytorch[sparse]); use backend='numpy'")
    return backend


def linear_layers(model: Module) -> list[tuple[str, Linear]]:
    """Every Linear of `model` with its dotted name, as `named_modules` gives it."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]


def swap_module(root: Module, name: str, new: Module) -> None:
    """Put `new` where the sub-module `name` (dotted, as `named_modules` gives it) is."""
    *path, last = name.split(".")
    parent = root
    for part in path:
        parent = parent[int(part)] if isinstance(parent, list) else getattr(parent, part)
    if isinstance(parent, list):
        parent[int(last)] = new
    else:
        setattr(parent, last, new)
