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
# # Module 16, given code: sparse layers and layer timing
#
# No task here. The CSR format, its NumPy kernel, `SparseLinear`, `to_sparse` (which
# swaps in a sparse layer only where it was measured faster), `plan_sparse`,
# `crossover_sparsity` and `compare_layer_times`, exported to
# `tinytorch/compression/sparse.py`. When do zeros become speed is the subject of
# Module 18 (Acceleration); this file keeps these names working until then.

# %%
#| default_exp compression.sparse

# %%
#| export compression.sparse
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tinytorch.core.autograd import is_grad_enabled, no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor
from tinytorch.profiling import time_interleaved

try:  # scipy is the optional extra `tinytorch[sparse]`; without it the NumPy path runs
    import scipy.sparse as _scipy_sparse
except ImportError:  # pragma: no cover - depends on what is installed
    _scipy_sparse = None

BACKENDS = ("scipy", "numpy")
# NOTE: csr_matmul builds a (rows of x) x nnz product array; chunks of the batch keep it
# near this many elements (4 MB in float32) instead of gigabytes for a large batch.
_CHUNK_ELEMENTS = 1 << 20




def default_backend() -> str:
    """`"scipy"` when scipy is installed (`pip install tinytorch[sparse]`), else `"numpy"`."""
    return "numpy" if _scipy_sparse is None else "scipy"


def _check_backend(backend: str | None) -> str:
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "scipy" and _scipy_sparse is None:
        raise ValueError("backend 'scipy' needs scipy (pip install tinytorch[sparse]); use backend='numpy'")
    return backend


def to_csr(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR form of a 2-D array: `(values, column indices, row pointers)`.

    Row i's non-zeros are `values[indptr[i]:indptr[i+1]]`, in columns
    `indices[indptr[i]:indptr[i+1]]` (increasing); `indptr` has rows + 1 entries.

    Raises:
        ValueError: `weight` is not 2-D.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    rows, cols = np.nonzero(weight)  # row-major order: each row's entries come together
    indptr = np.zeros(weight.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=weight.shape[0]), out=indptr[1:])
    return weight[rows, cols], cols.astype(np.int64), indptr


def csr_matmul(values: np.ndarray, indices: np.ndarray, indptr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x @ W.T` for `x (B, in)` and `W (rows, in)` given in CSR form, with NumPy only.

    Gather the input each stored weight meets, multiply, and sum each row's products
    with `np.add.reduceat`: work in proportion to the non-zeros, not to rows x in.

    Args:
        values, indices, indptr: `W` in CSR form (see `to_csr`).
        x: a 2-D batch of inputs.

    Returns:
        `(B, rows)` array.
    """
    rows = indptr.size - 1
    out = np.zeros((x.shape[0], rows), dtype=np.result_type(x.dtype, values.dtype))
    starts = indptr[:-1]
    filled = starts < indptr[1:]
    if not filled.any():
        return out
    # NOTE: reduceat gives an empty segment the single element at its start, not 0, so
    # only the rows that hold entries are reduced (each up to the next one's start).
    starts = starts[filled]
    step = max(1, _CHUNK_ELEMENTS // values.size)
    for lo in range(0, x.shape[0], step):
        # NOTE: np.take along axis 1 gathers several times faster than x[:, indices].
        products = np.take(x[lo:lo + step], indices, axis=1).astype(out.dtype, copy=False)
        products *= values
        out[lo:lo + step, filled] = np.add.reduceat(products, starts, axis=1)
    return out


class SparseLinear(Module):
    """y = x W^T + b with `W` stored and multiplied in CSR form: a Linear for inference only.

    It has no trainable parameters: its weights cannot learn. Gradients do flow to its
    input (in eval mode), but a forward pass in training mode with gradients on raises,
    so a training loop cannot leave it silently frozen. It starts in eval mode.
    Fine-tune the dense model (with its masks attached), then convert it. Its arrays
    are plain ndarrays, not Tensors, so `state_dict()` leaves them out: save the
    dense model (or `save_compressed`) and convert after loading.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None, backend: str | None = None) -> None:
        """Store `weight (out_features, in_features)` in CSR form and a copy of `bias (out_features,)`.

        Args:
            weight: the dense weight; its exact zeros are not stored.
            bias: the bias, or None.
            backend: "scipy" (compiled CSR kernels), "numpy" (`csr_matmul`), or None for
                scipy when it is installed.

        Raises:
            ValueError: `weight` is not 2-D, `bias` has the wrong shape, or an unknown backend.
        """
        super().__init__()
        self.backend = _check_backend(backend)
        self.values, self.indices, self.indptr = to_csr(weight)
        self.out_features, self.in_features = np.shape(weight)
        if bias is not None and np.shape(bias) != (self.out_features,):
            raise ValueError(f"bias must have shape ({self.out_features},), got {np.shape(bias)}")
        self.bias = None if bias is None else np.array(bias, dtype=self.values.dtype)
        self._csr: dict[bool, object] = {}  # transposed? -> the form the backend multiplies
        self.training = False

    @classmethod
    def from_linear(cls, linear: Linear, backend: str | None = None) -> "SparseLinear":
        """A SparseLinear computing what `linear` computes, from its current weights."""
        if not isinstance(linear, Linear):
            raise TypeError(f"linear must be a Linear, got {type(linear).__name__}")
        bias = None if linear.bias is None else linear.bias.data
        return cls(linear.weight.data, bias, backend)

    @property
    def nnz(self) -> int:
        """How many weights are stored (the non-zeros)."""
        return int(self.values.size)

    @property
    def sparsity(self) -> float:
        """The fraction of the dense weight that is zero (not stored)."""
        return 1.0 - self.nnz / (self.out_features * self.in_features)

    @property
    def nbytes(self) -> int:
        """Bytes held: values, column indices, row pointers and bias."""
        arrays = (self.values, self.indices, self.indptr) + (() if self.bias is None else (self.bias,))
        return int(sum(a.nbytes for a in arrays))

    def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """FLOPs of one forward pass (Module 14's `count_flops` asks): 2 per stored weight per input row."""
        return 2 * self.nnz * int(np.prod(input_shape[:-1], dtype=np.int64))

    def to_dense(self) -> np.ndarray:
        """The dense `(out_features, in_features)` weight."""
        dense = np.zeros((self.out_features, self.in_features), dtype=self.values.dtype)
        rows = np.repeat(np.arange(self.out_features), np.diff(self.indptr))
        dense[rows, self.indices] = self.values
        return dense

    def _operand(self, transposed: bool) -> object:
        """W (or W^T, for the input gradient) in the form the backend multiplies; built once."""
        if transposed not in self._csr:
            if self.backend == "scipy":
                shape = (self.out_features, self.in_features)
                matrix = _scipy_sparse.csr_matrix((self.values, self.indices, self.indptr), shape=shape)
                self._csr[transposed] = matrix.T.tocsr() if transposed else matrix
            else:
                self._csr[transposed] = to_csr(self.to_dense().T) if transposed else (
                    self.values, self.indices, self.indptr)
        return self._csr[transposed]

    def _multiply(self, x2d: np.ndarray, transposed: bool = False) -> np.ndarray:
        """`x2d @ W.T` (or `x2d @ W`) through the backend."""
        operand = self._operand(transposed)
        if self.backend == "numpy":
            return csr_matmul(*operand, x2d)
        if x2d.shape[0] == 1:
            return (operand @ x2d[0])[None, :]
        # NOTE: scipy multiplies a C-ordered (in, B) block fastest; x.T alone would be F-ordered.
        return np.ascontiguousarray((operand @ np.ascontiguousarray(x2d.T)).T)

    def forward(self, x: Tensor) -> Tensor:
        """Compute x W^T + b for `x (..., in_features)`; the gradient reaches `x`, never the weights.

        Raises:
            TypeError: `x` is not a Tensor.
            ValueError: the last dimension of `x` is not `in_features`.
            RuntimeError: training mode with gradients on (the weights cannot be trained).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"SparseLinear expects a Tensor, got {type(x).__name__}")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"SparseLinear({self.in_features}, {self.out_features}) needs input of shape "
                             f"(..., {self.in_features}), got {x.shape}")
        if self.training and is_grad_enabled():
            raise RuntimeError(
                "SparseLinear is inference-only: its CSR weights get no gradients, so training would leave "
                "them frozen. Fine-tune the dense model (masks attached), then convert it; run this one in "
                "eval mode (model.eval()) or under no_grad()")
        out = self._multiply(x.data.reshape(-1, self.in_features))
        if self.bias is not None:
            out += self.bias
        out = out.reshape(x.shape[:-1] + (self.out_features,))

        def backward(grad: np.ndarray) -> tuple[np.ndarray]:
            gx = self._multiply(grad.reshape(-1, self.out_features), transposed=True)
            return (gx.reshape(x.shape),)

        return Tensor.from_op(out, (x,), backward, op="sparse_linear")

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz} "
                f"({self.sparsity:.1%} sparse), bias={self.bias is not None}, backend={self.backend!r}")


@dataclass(frozen=True)
class SparseChoice:
    """One Linear layer: its sparsity and, if it was timed, dense and CSR seconds per call."""

    name: str
    shape: tuple[int, int]
    sparsity: float
    dense_seconds: float | None = None
    sparse_seconds: float | None = None

    @property
    def use_sparse(self) -> bool:
        """Whether the CSR layer was measured faster."""
        return self.sparse_seconds is not None and self.sparse_seconds < self.dense_seconds

    @property
    def speedup(self) -> float | None:
        """Dense time / CSR time (None when not timed)."""
        return None if self.sparse_seconds is None else self.dense_seconds / self.sparse_seconds


def crossover_sparsity(sparsities: Sequence[float], dense_seconds: Sequence[float],
                       sparse_seconds: Sequence[float]) -> float | None:
    """The sparsity from which CSR stays faster than dense, interpolated between measured points.

    The answer is the lowest measured sparsity at which CSR wins there and at every
    higher one, moved back towards the last losing point where log(sparse / dense)
    crosses 0 on the straight line between the two. It is the lowest sparsity measured
    when CSR wins everywhere, and None when CSR loses at the highest.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    if not len(sparsities) == len(dense_seconds) == len(sparse_seconds) > 0:
        raise ValueError(f"need one dense and one sparse time per sparsity, got {len(sparsities)} sparsities, "
                         f"{len(dense_seconds)} dense and {len(sparse_seconds)} sparse times")
    points = sorted(zip(sparsities, np.log(np.asarray(sparse_seconds) / np.asarray(dense_seconds))))
    first = len(points)
    while first > 0 and points[first - 1][1] < 0:
        first -= 1
    if first == len(points):
        return None
    if first == 0:
        return float(points[0][0])
    (s0, r0), (s1, r1) = points[first - 1], points[first]
    return float(s0 + (s1 - s0) * r0 / (r0 - r1))


def _linears(model: Module) -> list[tuple[str, Linear]]:
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]


def plan_sparse(model: Module, min_sparsity: float = 0.5, batch_size: int = 1, backend: str | None = None,
                repeats: int = 7, clock: str = "wall") -> list[SparseChoice]:
    """For each Linear of `model`: its sparsity and, from `min_sparsity` on, dense vs CSR time.

    Both forms are timed on the layer's own weights and a random `(batch_size,
    in_features)` input, interleaved (`time_interleaved`), in eval mode without gradients.

    Args:
        model: the model (not changed).
        min_sparsity: layers sparser than this are timed, in [0, 1].
        batch_size: rows of the timing input, >= 1.
        backend: as for `SparseLinear`.
        repeats: timing rounds per layer.
        clock: as for `time_interleaved`.

    Returns:
        One `SparseChoice` per Linear, in model order.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: `min_sparsity` outside [0, 1], `batch_size` < 1, an unknown backend.
    """
    layers = _linears(model)
    number = isinstance(min_sparsity, (int, float, np.integer, np.floating)) and not isinstance(min_sparsity, bool)
    if not number or not 0 <= min_sparsity <= 1:  # also rejects NaN
        raise ValueError(f"min_sparsity must be a number in [0, 1], got {min_sparsity!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    backend = _check_backend(backend)
    rng = np.random.default_rng(0)
    choices = []
    for name, layer in layers:
        w = layer.weight.data
        sparsity = 1.0 - np.count_nonzero(w) / w.size
        if sparsity < min_sparsity:
            choices.append(SparseChoice(name, w.shape, sparsity))
            continue
        sparse = SparseLinear.from_linear(layer, backend)
        x = Tensor(rng.standard_normal((batch_size, w.shape[1])).astype(w.dtype))
        was_training = layer.training
        layer.eval()
        try:
            with no_grad():
                dense_s, sparse_s = time_interleaved([lambda: layer(x), lambda: sparse(x)], repeats=repeats,
                                                      clock=clock)
        finally:
            layer.train(was_training)
        choices.append(SparseChoice(name, w.shape, sparsity, dense_s, sparse_s))
    return choices


def _swap(root: Module, name: str, new: Module) -> None:
    """Put `new` where the sub-module `name` (dotted, as `named_modules` gives it) is."""
    *path, last = name.split(".")
    parent = root
    for part in path:
        parent = parent[int(part)] if isinstance(parent, list) else getattr(parent, part)
    if isinstance(parent, list):
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


def to_sparse(model: Module, min_sparsity: float = 0.5, batch_size: int = 1, backend: str | None = None,
              plan: Sequence[SparseChoice] | None = None) -> Module:
    """A copy of `model`, in eval mode, with a SparseLinear wherever CSR was measured faster.

    Only Linear layers at least `min_sparsity` sparse are considered, and each one is
    swapped only when its CSR form ran faster than the dense one at `batch_size`
    (`plan_sparse`). The crossover depends on the batch size and the machine, so it is
    measured, not assumed. The copy is for inference (see `SparseLinear`).

    Args:
        model: the model (not changed).
        min_sparsity: as for `plan_sparse`.
        batch_size: the batch size the copy will serve.
        backend: as for `SparseLinear`.
        plan: the result of `plan_sparse(model, ...)`, to reuse its measurements.

    Returns:
        The new model (a SparseLinear when `model` is itself a Linear that was swapped).

    Raises:
        TypeError: `model` is not a Module.
        ValueError: bad `min_sparsity`, `batch_size` or backend, or a plan for other layers.
    """
    layers = dict(_linears(model))
    if plan is None:
        plan = plan_sparse(model, min_sparsity, batch_size, backend)
    wrong = [f"{c.name!r} {c.shape}" for c in plan
             if c.name not in layers or layers[c.name].weight.data.shape != tuple(c.shape)]
    if wrong:
        have = ", ".join(f"{n!r} {m.weight.data.shape}" for n, m in layers.items())
        raise ValueError(f"plan names Linear layers this model does not have: {', '.join(wrong)} (it has {have})")
    new = copy.deepcopy(model)
    replaced = new
    for choice in plan:
        if choice.use_sparse:
            copied = dict(new.named_modules())[choice.name]
            sparse = SparseLinear.from_linear(copied, backend)
            if choice.name == "":
                replaced = sparse
            else:
                _swap(new, choice.name, sparse)
    return replaced.eval()


# %%
#| export compression.sparse
@dataclass(frozen=True)
class LayerTime:
    """One position of two models run side by side: the layer's seconds per call and FLOPs in each."""

    name: str
    kind: str
    before_seconds: float
    after_seconds: float
    before_flops: int
    after_flops: int

    @property
    def speedup(self) -> float:
        """Seconds before / seconds after."""
        return self.before_seconds / self.after_seconds

    @property
    def flop_ratio(self) -> float | None:
        """FLOPs before / FLOPs after; None for a layer that counts no FLOPs after."""
        return self.before_flops / self.after_flops if self.after_flops else None


def compare_layer_times(before: Module, after: Module, x: Tensor | np.ndarray, repeats: int = 7,
                        clock: str = "wall") -> list[LayerTime]:
    """Time every layer of two models with the same layer sequence, side by side.

    Both models run on `x` one layer at a time, under `no_grad` and in their current
    mode (call `eval()` first to time inference); each layer gets its own model's
    activations. Layer i of both models is timed in the same interleaved rounds
    (`time_interleaved`), so each ratio is as steady as a whole-model one.

    Args:
        before, after: Sequentials (nested ones are opened up) with the same kinds of
            layer in the same order, e.g. a masked model and `remove_pruned_units` of it.
        x: one input batch for both.
        repeats, clock: as in `time_interleaved`.

    Returns:
        One `LayerTime` per layer, in the order they run.

    Raises:
        TypeError: `before` or `after` is not a Module.
        ValueError: the two layer sequences differ in length or in a layer's kind.
    """
    from tinytorch.compression.surgery import sequential_layers
    from tinytorch.profiling import layer_flops

    for arg, model in (("before", before), ("after", after)):
        if not isinstance(model, Module):
            raise TypeError(f"{arg} must be a tinytorch Module, got {type(model).__name__}")
    first, second = sequential_layers(before), sequential_layers(after)
    if len(first) != len(second):
        raise ValueError(f"before has {len(first)} layers and after has {len(second)}: "
                         "compare_layer_times needs the same layers in the same order")
    for (name, a), (_, b) in zip(first, second):
        if type(a) is not type(b):
            raise ValueError(f"layer {name!r} is a {type(a).__name__} in before but a {type(b).__name__} "
                             "in after: compare_layer_times needs the same layers in the same order")
    x_before = x_after = x if isinstance(x, Tensor) else Tensor(x)
    rows = []
    with no_grad():
        for (name, a), (_, b) in zip(first, second):
            out_a, out_b = a(x_before), b(x_after)
            seconds = time_interleaved([lambda a=a, h=x_before: a(h), lambda b=b, h=x_after: b(h)],
                                       repeats=repeats, clock=clock)
            rows.append(LayerTime(name, type(a).__name__, seconds[0], seconds[1],
                                  layer_flops(a, x_before.shape, out_a.shape),
                                  layer_flops(b, x_after.shape, out_b.shape)))
            x_before, x_after = out_a, out_b
    return rows
