"""Checking an op's own backward closure against central differences, for every module's tests.

`closure_gradcheck` calls `out._backward(g)` directly, so a module's gradients can be
checked before Module 05's engine exists; the finite differences are Module 05's
`numerical_grad` (float64, any memory layout).
"""
from __future__ import annotations

import numpy as np

from tinytorch.core.autograd import numerical_grad
from tinytorch.core.tensor import Tensor, set_default_dtype


def closure_gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Assert that the backward closure of `fn(*tensors)` matches central differences, input by input."""
    previous = set_default_dtype(np.float64)
    try:
        xs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
        out = fn(*xs)
        g = np.random.default_rng(seed).standard_normal(out.shape)
        # NOTE: the closure's gradients follow `out._parents`; unless those are exactly the
        # inputs, zip() below would pair the wrong arrays or silently skip a gradient.
        assert len(out._parents) == len(xs) and all(p is x for p, x in zip(out._parents, xs)), \
            f"closure_gradcheck needs fn to be one op whose parents are its inputs, got op {out._op!r}"
        analytic = tuple(out._backward(g))
        assert len(analytic) == len(xs), f"{out._op}: {len(analytic)} gradients for {len(xs)} inputs"
        numeric = numerical_grad(fn, xs, g, eps=eps)
        for i, (a, n) in enumerate(zip(analytic, numeric)):
            np.testing.assert_allclose(a, n, rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i} of {getattr(out, '_op', '?')}")
    finally:
        set_default_dtype(previous)
