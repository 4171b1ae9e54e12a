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
# # Module 16: Compression
#
# > Pruning that keeps its promises: exact sparsity, masks that survive fine-tuning, and honest bytes.
#
# A trained network has far more weights than it needs. In this module you remove most
# of them and measure what that buys and what it costs:
#
# 1. **Measure** sparsity: which weights are zero, per layer and in total.
# 2. **Magnitude pruning**: zero the weights with the smallest |w|, globally or per layer,
#    in O(n) time and without copying the model.
# 3. **Sensitivity**: which layers tolerate pruning, so each layer gets its own sparsity.
# 4. **Structured pruning**: remove whole neurons and filters, the only kind of sparsity
#    that dense hardware turns into speed.
# 5. **Masks and fine-tuning**: an optimizer step brings pruned weights back to life
#    unless something stops it. Here, the optimizer's post-step hook does.
# 6. **Iterative pruning**: prune a little, fine-tune, repeat (Zhu & Gupta's schedule),
#    and the lottery-ticket variant that rewinds survivors to their first values.
# 7. **Pruning + INT8** (Module 15): what the bytes on disk really are.
#
# Every figure in this lesson is measured when you run it. Run the file
# (`python modules/16_compression/compression_dev.py`) or `tito test 16_compression`.

# %%
#| default_exp compression.prune

# %%
#| export
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinytorch.core.layers import Linear, Module
from tinytorch.core.spatial import BatchNorm2d, Conv2d

# %% [markdown]
# ## 1. What can be pruned, and how sparse is it?
#
# We prune the `.weight` of every `Linear` and `Conv2d`: that is where almost all the
# parameters live. Biases and normalisation parameters are a rounding error in size and
# removing them one by one hurts accuracy, so unstructured pruning never touches them.
#
# *Sparsity* is the fraction of those weights that are exactly zero. Everything else in
# this module is judged by it, so it must be computed exactly: `np.count_nonzero` on the
# real arrays, no tolerance.

# %%
#| export
_PRUNABLE = (Linear, Conv2d)


def _check_model(model: object) -> Module:
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    return model


def prunable_layers(model: Module) -> list[tuple[str, Module]]:
    """The `(name, layer)` pairs of every Linear and Conv2d in `model`, in model order.

    Raises:
        TypeError: `model` is not a Module.
        ValueError: the model has no Linear or Conv2d layer.
    """
    _check_model(model)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _PRUNABLE)]
    if not layers:
        kinds = sorted({type(m).__name__ for _, m in model.named_modules()})
        raise ValueError(f"model has no Linear or Conv2d layer to prune (it has: {', '.join(kinds)})")
    return layers


def _check_fraction(name: str, value: object) -> float:
    # NOTE: bool is an int subclass; True would silently mean 100%.
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (0.0 <= value < 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


# %% [markdown]
# A report is a list of rows you can read, test and print. Students tend to print it
# after every step, so its `str` is a table.

# %% nbgrader={"grade": false, "grade_id": "measure-sparsity", "solution": true}
#| export
@dataclass(frozen=True)
class LayerSparsity:
    """One row of a sparsity report."""

    name: str
    shape: tuple[int, ...]
    params: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0


class SparsityReport(list):
    """Per-layer sparsity rows; `str(report)` is a table, `.total` the whole model."""

    @property
    def total(self) -> LayerSparsity:
        return LayerSparsity("total", (), sum(r.params for r in self), sum(r.zeros for r in self))

    def __str__(self) -> str:
        lines = [f"{'layer':<16} {'shape':<18} {'params':>10} {'zeros':>10} {'sparsity':>9}"]
        for r in [*self, self.total]:
            shape = "x".join(map(str, r.shape)) if r.shape else ""
            lines.append(f"{r.name:<16} {shape:<18} {r.params:>10,} {r.zeros:>10,} {r.sparsity:>8.1%}")
        return "\n".join(lines)


def sparsity_report(model: Module) -> SparsityReport:
    """Per prunable layer: name, weight shape, number of weights, zeros, sparsity. Task 16.1"""
    ### BEGIN SOLUTION
    rows = SparsityReport()
    for name, layer in prunable_layers(model):
        w = layer.weight.data
        rows.append(LayerSparsity(name, tuple(w.shape), int(w.size), int(w.size - np.count_nonzero(w))))
    return rows
    ### END SOLUTION


def measure_sparsity(model: Module) -> float:
    """The fraction of prunable weights (Linear and Conv2d `.weight`) that are exactly zero. Task 16.1"""
    ### BEGIN SOLUTION
    return sparsity_report(model).total.sparsity
    ### END SOLUTION


# %%
def _toy_mlp(seed: int = 0):
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(8, 16), ReLU(), Linear(16, 12), ReLU(), Linear(12, 4))


def test_unit_measure_sparsity():
    """Task 16.1"""
    model = _toy_mlp()
    assert measure_sparsity(model) == 0.0
    model[0].weight.data[:2] = 0.0  # two rows of 8 weights
    report = sparsity_report(model)
    assert [r.name for r in report] == ["0", "2", "4"]
    assert report[0].zeros == 16 and report[0].params == 128
    assert report.total.params == 8 * 16 + 16 * 12 + 12 * 4
    assert measure_sparsity(model) == 16 / report.total.params
    assert "total" in str(report)


# %% [markdown]
# ## 2. Magnitude pruning in O(n)
#
# Han et al. (2015) observed that the weights with the smallest magnitude matter least:
# zero them and the network barely notices. To zero exactly `k = round(sparsity * n)`
# weights we need the k-th smallest |w|, the *threshold*.
#
# Sorting all n magnitudes costs O(n log n) and a second copy of the model. We need
# only one order statistic, and `ndarray.partition` finds it in O(n) (introselect),
# **in place**. So the plan is:
#
# 1. write |w| of every layer into one float32 buffer (the only full-size copy: 1x the
#    weights' bytes);
# 2. partition the buffer at k-1 and read the threshold t; free the buffer;
# 3. per layer, keep `|w| > t`; weights equal to t are ties, and we prune just enough of
#    them, in order, to hit k exactly;
# 4. multiply each weight by its boolean mask, in place (1 byte per weight).
#
# `scope="global"` ranks all layers together, so layers full of small weights lose more;
# `scope="layer"` prunes every layer to the same fraction. A dict `{layer: sparsity}`
# gives each layer its own fraction (section 3 shows how to choose them).

# %% nbgrader={"grade": false, "grade_id": "smallest-k", "solution": true}
#| export
def kth_smallest_magnitude(arrays: Sequence[np.ndarray], k: int, sample: int = 65536) -> float:
    """The k-th smallest |x| (1-based) over all `arrays`, in O(n) time and small extra memory. Task 16.2

    A random sample brackets the answer between two values; one pass counts the entries
    below the bracket and gathers those inside it (about 1% of n), and an in-place
    partition of that small set gives the exact answer. If the bracket misses (rare),
    fall back to partitioning a copy of all magnitudes. The sample only affects speed,
    never the result.
    """
    ### BEGIN SOLUTION
    n = sum(a.size for a in arrays)
    flat = [a.reshape(-1) for a in arrays]
    if n > 4 * sample:
        rng = np.random.default_rng(0)
        picks = np.concatenate([np.abs(f[rng.integers(0, f.size, max(1, sample * f.size // n))]) for f in flat])
        picks.sort()
        q, margin = k / n, 5.0 * math.sqrt(k / n * (1 - k / n) / picks.size) + 2.0 / picks.size
        lo = picks[max(0, int((q - margin) * picks.size))]
        hi = picks[min(picks.size - 1, int((q + margin) * picks.size))]
        below, inside = 0, []
        for f in flat:
            mags = np.abs(f)
            below += int(np.count_nonzero(mags < lo))
            inside.append(mags[(mags >= lo) & (mags <= hi)])
        inside = np.concatenate(inside)
        if below < k <= below + inside.size:
            inside.partition(k - below - 1)
            return float(inside[k - below - 1])
    # NOTE: ndarray.partition works in place; np.partition would copy all n again.
    magnitudes = np.concatenate([np.abs(f) for f in flat])
    magnitudes.partition(k - 1)
    return float(magnitudes[k - 1])
    ### END SOLUTION


def smallest_k_masks(arrays: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
    """Keep-masks that drop exactly the `k` smallest-|x| entries across all `arrays`.

    Ties at the threshold are dropped in order (array by array, then C order), so the
    result is deterministic.
    """
    n = sum(a.size for a in arrays)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer in [0, {n}], got {k!r}")
    if k == 0:
        return [np.ones(a.shape, dtype=bool) for a in arrays]
    threshold = np.float32(kth_smallest_magnitude(arrays, k))
    masks = [np.abs(a) > threshold for a in arrays]
    excess = n - sum(int(np.count_nonzero(m)) for m in masks) - k  # ties kept out by `>`
    for a, keep in reversed(list(zip(arrays, masks))):
        if excess <= 0:
            break
        tied = np.flatnonzero(np.abs(a).reshape(-1) == threshold)
        restore = tied[max(0, tied.size - excess):]  # the last ties in order stay
        keep.reshape(-1)[restore] = True
        excess -= restore.size
    return masks


# %%
def test_unit_smallest_k_masks():
    """Task 16.2"""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal(11).astype(np.float32)]
    flat = np.concatenate([a.ravel() for a in arrays])
    for k in (0, 1, 17, flat.size):
        masks = smallest_k_masks(arrays, k)
        kept = np.concatenate([m.ravel() for m in masks])
        assert np.count_nonzero(~kept) == k
        expected = np.ones(flat.size, bool)
        expected[np.argsort(np.abs(flat), kind="stable")[:k]] = False
        assert np.array_equal(kept, expected)
    tied = [np.array([1.0, -1.0, 1.0, 2.0], np.float32)]
    assert smallest_k_masks(tied, 2)[0].tolist() == [False, False, True, True]


# %% nbgrader={"grade": false, "grade_id": "magnitude-prune", "solution": true}
#| export
def _resolve_layer_sparsities(layers: list[tuple[str, Module]], sparsity: Mapping) -> dict[str, float]:
    names = {name: name for name, _ in layers} | {f"{name}.weight": name for name, _ in layers}
    chosen = {}
    for key, value in sparsity.items():
        if key not in names:
            raise ValueError(f"sparsity names layer {key!r}, which is not a Linear/Conv2d of this model "
                             f"(prunable layers: {', '.join(n for n, _ in layers)})")
        chosen[names[key]] = _check_fraction(f"sparsity[{key!r}]", value)
    return chosen


def magnitude_prune(model: Module, sparsity: float | Mapping[str, float], scope: str = "global") -> Masks:
    """Zero, in place, exactly round(sparsity * n) of the smallest-|w| prunable weights. Task 16.3

    Args:
        model: the model to prune (changed in place).
        sparsity: a fraction in [0, 1), or `{layer name: fraction}` for a layer-wise
            allocation (layers not named are left alone).
        scope: "global" ranks all layers' weights together (n = all prunable weights);
            "layer" prunes each layer to the same fraction (n = that layer's weights).

    Returns:
        The keep-masks of the pruned weights, already applied.

    Raises:
        TypeError: `model` is not a Module, or `sparsity` is not a number.
        ValueError: `sparsity` outside [0, 1) or NaN, an unknown `scope` or layer name,
            or a model without Linear/Conv2d layers.
    """
    layers = prunable_layers(model)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    ### BEGIN SOLUTION
    if isinstance(sparsity, Mapping):
        per_layer = _resolve_layer_sparsities(layers, sparsity)
        groups = [([name], per_layer[name]) for name, _ in layers if name in per_layer]
    else:
        sparsity = _check_fraction("sparsity", sparsity)
        names = [name for name, _ in layers]
        groups = [(names, sparsity)] if scope == "global" else [([n], sparsity) for n in names]
    by_name = dict(layers)
    masks = {}
    for names, fraction in groups:
        weights = [by_name[n].weight.data for n in names]
        k = round(fraction * sum(w.size for w in weights))
        for name, keep in zip(names, smallest_k_masks(weights, k)):
            masks[f"{name}.weight"] = keep
    return Masks(model, masks).apply()
    ### END SOLUTION


# %%
def test_unit_magnitude_prune():
    """Task 16.3"""
    model = _toy_mlp()
    weights = np.concatenate([model[i].weight.data.ravel() for i in (0, 2, 4)])
    masks = magnitude_prune(model, 0.5)
    k = round(0.5 * weights.size)
    assert abs(measure_sparsity(model) - k / weights.size) < 1e-12
    threshold = np.sort(np.abs(weights))[k - 1]
    for i in (0, 2, 4):
        w = model[i].weight.data
        assert np.all(w[~masks[f"{i}.weight"]] == 0)
        assert np.all(np.abs(w[masks[f"{i}.weight"]]) > threshold)
    assert np.count_nonzero(model[0].bias.data) == model[0].bias.data.size  # biases untouched
    model = _toy_mlp()
    magnitude_prune(model, 0.25, scope="layer")
    for row in sparsity_report(model):
        assert row.zeros == round(0.25 * row.params)
    model = _toy_mlp()
    magnitude_prune(model, {"2": 0.5})
    assert [r.zeros for r in sparsity_report(model)] == [0, 96, 0]
    for bad in (1.0, -0.1, float("nan")):
        try:
            magnitude_prune(model, bad)
        except ValueError as err:
            assert "sparsity" in str(err)
        else:
            raise AssertionError(f"sparsity={bad} was accepted")


# %% [markdown]
# A `Masks` object remembers which weights were pruned: a mapping from parameter name
# (PyTorch's dotted names, `"0.weight"`) to a boolean *keep* mask of the parameter's
# shape. Pruning functions apply it at once and return it, so you can re-apply it
# later, combine it with another, or hand it to an optimizer (section 5).

# %% nbgrader={"grade": false, "grade_id": "masks", "solution": true}
#| export
class Masks(Mapping):
    """Parameter name -> boolean keep-mask, bound to the model it was made for."""

    def __init__(self, model: Module, masks: Mapping[str, np.ndarray]):
        params = dict(_check_model(model).named_parameters())
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
        params = dict(self.model.named_parameters())
        missing = [n for n in self._masks if n not in params or params[n].data.shape != self._masks[n].shape]
        if missing:
            raise ValueError(f"the model no longer matches these masks (changed: {', '.join(missing)})")
        return [(params[n], m) for n, m in self._masks.items()]

    def apply(self) -> Masks:
        """Zero every pruned entry of the bound model's parameters, in place. Task 16.4"""
        ### BEGIN SOLUTION
        for tensor, mask in self._tensors():
            np.multiply(tensor.data, mask, out=tensor.data)
        return self
        ### END SOLUTION

    def attach(self, optimizer) -> object:
        """Keep pruned entries at exactly 0.0 after every `optimizer.step()`. Task 16.5

        Registers a post-step hook on the optimizer that re-applies the masks and zeroes
        the optimizer's per-parameter state (momentum, Adam moments) at pruned positions,
        so a pruned weight cannot drift back. Returns the hook's handle (`.remove()`).

        Raises:
            ValueError: a masked parameter is not among the optimizer's parameters
                (masks made for another model, or an optimizer over other parameters).
        """
        ### BEGIN SOLUTION
        index = {id(p): i for i, p in enumerate(optimizer.params)}
        bound = []
        for (name, mask), (tensor, _) in zip(self._masks.items(), self._tensors()):
            if id(tensor) not in index:
                raise ValueError(f"parameter {name!r} of these masks is not among the optimizer's "
                                 "parameters: were the masks made for another model?")
            bound.append((index[id(tensor)], tensor, mask))

        def keep_pruned_at_zero(opt) -> None:
            for i, tensor, mask in bound:
                np.multiply(tensor.data, mask, out=tensor.data)
                for buf in opt.state[i].values() if i < len(opt.state) else ():
                    if isinstance(buf, np.ndarray) and buf.shape == mask.shape:
                        np.multiply(buf, mask, out=buf)

        self.apply()
        return optimizer.register_step_post_hook(keep_pruned_at_zero)
        ### END SOLUTION

    def __and__(self, other: Masks) -> Masks:
        """Entries kept by both (a parameter masked in one only keeps that mask)."""
        merged = dict(self._masks)
        for name, mask in other.items():
            merged[name] = merged[name] & mask if name in merged else mask
        return Masks(self.model, merged)

    def __repr__(self) -> str:
        return f"Masks({len(self)} parameters, sparsity={self.sparsity:.1%})"


# %%
def test_unit_masks_apply():
    """Task 16.4"""
    model = _toy_mlp()
    keep = np.random.default_rng(2).random((16, 8)) > 0.5
    masks = Masks(model, {"0.weight": keep}).apply()
    assert np.all(model[0].weight.data[~keep] == 0) and np.all(model[0].weight.data[keep] != 0)
    assert abs(masks.sparsity - (1 - keep.mean())) < 1e-12
    try:
        Masks(model, {"0.weight": keep.T})
    except ValueError as err:
        assert "(16, 8)" in str(err)
    else:
        raise AssertionError("a mask of the wrong shape was accepted")


# %% [markdown]
# ## 3. Not every layer is equally fragile
#
# One global threshold prunes layers unevenly, and one fraction for all layers ignores
# that some layers matter more. A *sensitivity scan* asks the data: prune one layer at a
# time to each sparsity, evaluate, restore. Layers whose accuracy barely moves can be
# pruned hard; the fragile ones (often the first and the last) get less.
# `SensitivityScan.choose(max_drop)` turns the scan into a `{layer: sparsity}`
# allocation for `magnitude_prune`.

# %% nbgrader={"grade": false, "grade_id": "sensitivity", "solution": true}
#| export
class SensitivityScan(list):
    """Rows of `(layer, sparsity, score)`, plus the unpruned `baseline` score."""

    def __init__(self, rows: list[tuple[str, float, float]], baseline: float):
        super().__init__(rows)
        self.baseline = baseline

    def choose(self, max_drop: float) -> dict[str, float]:
        """Per layer, the highest scanned sparsity whose score is within `max_drop` of the baseline."""
        best: dict[str, float] = {}
        for layer, sparsity, score in self:
            best.setdefault(layer, 0.0)
            if score >= self.baseline - max_drop:
                best[layer] = max(best[layer], sparsity)
        return best

    def __str__(self) -> str:
        sparsities = sorted({s for _, s, _ in self})
        layers = list(dict.fromkeys(layer for layer, _, _ in self))
        scores = {(layer, s): score for layer, s, score in self}
        lines = [f"baseline {self.baseline:.4f}", "layer    " + "".join(f"{s:>9.0%}" for s in sparsities)]
        for layer in layers:
            lines.append(f"{layer:<9}" + "".join(f"{scores[(layer, s)]:>9.4f}" for s in sparsities))
        return "\n".join(lines)


def sensitivity_scan(model: Module, evaluate: Callable[[Module], float],
                     sparsities: Sequence[float] = (0.5, 0.75, 0.9, 0.95)) -> SensitivityScan:
    """Score after pruning each layer alone to each sparsity; the model is restored after each. Task 16.6

    Args:
        model: a trained model (left exactly as it was, even if `evaluate` raises).
        evaluate: `evaluate(model) -> float`, higher is better (e.g. test accuracy).
        sparsities: the fractions to try, each in [0, 1).

    Returns:
        A `SensitivityScan` with one row per (layer, sparsity) and the baseline score.
    """
    layers = prunable_layers(model)
    fractions = [_check_fraction("sparsities[i]", s) for s in sparsities]
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable as evaluate(model) -> float, got {type(evaluate).__name__}")
    ### BEGIN SOLUTION
    baseline = float(evaluate(model))
    rows = []
    for name, layer in layers:
        original = layer.weight.data.copy()
        try:
            for s in fractions:
                magnitude_prune(model, {name: s})
                rows.append((name, s, float(evaluate(model))))
                np.copyto(layer.weight.data, original)
        finally:
            np.copyto(layer.weight.data, original)
    return SensitivityScan(rows, baseline)
    ### END SOLUTION


# %%
def test_unit_sensitivity_scan():
    """Task 16.6"""
    model = _toy_mlp()
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    calls = []

    def score(m):
        calls.append(measure_sparsity(m))
        return 1.0 - measure_sparsity(m)

    scan = sensitivity_scan(model, score, [0.5, 0.9])
    assert len(scan) == 6 and len(calls) == 7 and scan.baseline == 1.0
    for n, p in model.named_parameters():
        assert np.array_equal(p.data, before[n])
    assert scan.choose(max_drop=1.0) == {"0": 0.9, "2": 0.9, "4": 0.9}


# %% [markdown]
# ## 4. Structured pruning: remove whole units
#
# Unstructured sparsity leaves a weight matrix the same shape, with zeros scattered
# through it: a dense matmul does the same work. Remove a whole *output unit* instead (a
# row of a Linear weight, a filter of a Conv2d) and the layer really is smaller, and so
# is the next layer's input. We rank units by the Lp norm of their weights (L1 by
# default, as in Li et al. 2017) and zero the `round(ratio * units)` weakest.
#
# For the unit's output to be truly zero we also zero its bias entry, and, when a
# `BatchNorm2d` follows the conv, that channel's scale and shift (otherwise BatchNorm
# would turn a zero channel back into `beta`). The last layer's units are the classes,
# so it is never pruned, and every layer keeps at least one unit.
#
# `remove_pruned_units` (later) turns such masks into a physically smaller model.

# %% nbgrader={"grade": false, "grade_id": "structured-prune", "solution": true}
#| export
def _following_batchnorm(model: Module, layers: list[tuple[str, Module]]) -> dict[str, tuple[str, Module]]:
    """For each Conv2d, the BatchNorm2d that comes next (before the next prunable layer)."""
    found, pending = {}, None
    for name, m in model.named_modules():
        if isinstance(m, _PRUNABLE):
            pending = (name, m) if isinstance(m, Conv2d) else None
        elif isinstance(m, BatchNorm2d) and pending is not None:
            if m.weight.data.shape[0] == pending[1].weight.data.shape[0]:
                found[pending[0]] = (name, m)
            pending = None
    return found


def unit_norms(weight: np.ndarray, norm: float = 1) -> np.ndarray:
    """The Lp norm of each output unit (axis 0) of a weight array."""
    flat = weight.reshape(weight.shape[0], -1)
    # NOTE: accumulate in float64 without a float64 copy of the weights.
    if norm == 1:
        return np.abs(flat).sum(axis=1, dtype=np.float64)
    return np.sqrt(np.square(flat).sum(axis=1, dtype=np.float64))


def structured_prune(model: Module, ratio: float, norm: float = 1) -> Masks:
    """Zero, in place, the round(ratio * units) lowest-norm output units of each layer. Task 16.7

    Args:
        model: the model to prune (changed in place).
        ratio: fraction of units to remove per layer, in [0, 1). Every layer keeps at
            least one unit; the last Linear/Conv2d (the classes) is never pruned.
        norm: p of the Lp norm that ranks units (1 or 2).

    Returns:
        Masks over each pruned layer's weight and bias and a following BatchNorm's
        weight and bias, already applied.
    """
    layers = prunable_layers(model)
    ratio = _check_fraction("ratio", ratio)
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    ### BEGIN SOLUTION
    batchnorms = _following_batchnorm(model, layers)
    masks = {}
    for name, layer in layers[:-1]:
        weight = layer.weight.data
        units = weight.shape[0]
        k = min(round(ratio * units), units - 1)
        keep = np.ones(units, dtype=bool)
        keep[np.argsort(unit_norms(weight, norm), kind="stable")[:k]] = False
        masks[f"{name}.weight"] = np.broadcast_to(keep.reshape((-1,) + (1,) * (weight.ndim - 1)), weight.shape).copy()
        if getattr(layer, "bias", None) is not None:
            masks[f"{name}.bias"] = keep.copy()
        if name in batchnorms:
            bn_name, _ = batchnorms[name]
            masks[f"{bn_name}.weight"] = keep.copy()
            masks[f"{bn_name}.bias"] = keep.copy()
    return Masks(model, masks).apply()
    ### END SOLUTION


# %%
def test_unit_structured_prune():
    """Task 16.7"""
    model = _toy_mlp()
    w = model[0].weight.data.copy()
    structured_prune(model, 0.25)
    norms = np.abs(w).sum(axis=1)
    dropped = np.argsort(norms)[:4]
    assert np.all(model[0].weight.data[dropped] == 0) and np.all(model[0].bias.data[dropped] == 0)
    assert np.count_nonzero(np.abs(model[0].weight.data).sum(axis=1)) == 12
    assert np.count_nonzero(model[4].weight.data) == model[4].weight.data.size  # class layer kept
    model = _toy_mlp()
    structured_prune(model, 0.99)
    assert np.count_nonzero(np.abs(model[0].weight.data).sum(axis=1)) == 1  # at least one unit


# %% [markdown]
# ## 5. Fine-tuning without resurrection
#
# After pruning, a few epochs of training recover most of the lost accuracy. But the
# optimizer does not know about the masks: the gradient of a pruned weight is not zero,
# momentum remembers its past, and weight decay keeps moving it. One `step()` and the
# "pruned" weights are back.
#
# The fix belongs where the update happens: Module 06's optimizers call their
# *post-step hooks* after every `step()`. `Masks.attach(optimizer)` registers one that
# multiplies each pruned weight by its mask and clears the optimizer's state there
# (momentum buffers, Adam's moments), so the weight is exactly 0.0 after every step, for
# SGD, Adam and AdamW alike. `fine_tune` is Module 07's `fit` with the masks attached.

# %%
#| export compression.iterative
import os
import sys
from collections.abc import Callable

import numpy as np

from tinytorch.compression.prune import Masks, _check_fraction, _check_model, magnitude_prune, measure_sparsity
from tinytorch.compression.prune import structured_prune
from tinytorch.core.layers import Module

# %% nbgrader={"grade": false, "grade_id": "fine-tune", "solution": false}
#| export compression.iterative
def fine_tune(model: Module, optimizer, loss_fn, loader, epochs: int, masks: Masks | None = None,
              progress: bool | None = None) -> list[dict]:
    """Train `model` with `tinytorch.core.training.fit`, keeping `masks` applied after every step.

    Args:
        model, optimizer, loss_fn, loader, epochs: as for `fit`.
        masks: keep-masks to hold (attached for the duration, removed afterwards).
        progress: show a progress bar (default: only on a terminal).

    Returns:
        `fit`'s history, one row per epoch.
    """
    from tinytorch.core.training import fit

    handle = masks.attach(optimizer) if masks is not None else None
    try:
        return fit(model, optimizer, loss_fn, loader, epochs, progress=progress)
    finally:
        if handle is not None:
            handle.remove()


# %%
def test_unit_masks_survive_optimizer():
    """Task 16.5"""
    from tinytorch.core.optimizers import SGD, Adam
    from tinytorch.core.tensor import Tensor

    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1), lambda p: Adam(p, lr=0.01)):
        model = _toy_mlp()
        masks = magnitude_prune(model, 0.6)
        opt = make(model.parameters())
        handle = masks.attach(opt)
        x = Tensor(np.random.default_rng(0).standard_normal((5, 8)))
        for _ in range(5):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        for name, mask in masks.items():
            p = dict(model.named_parameters())[name]
            assert np.all(p.data[~mask] == 0.0), name
        handle.remove()


# %% [markdown]
# ## 6. Iterative pruning
#
# Pruning 90% at once removes weights that the network needed, and fine-tuning has to
# rebuild from a wreck. Pruning a little at a time lets the survivors take over. Zhu &
# Gupta (2017) ramp the sparsity with a cubic schedule, fast at first when many weights
# are redundant, slowly near the end:
#
# $$s_t = s_f + (s_i - s_f)\left(1 - \frac{t}{T}\right)^3, \quad t = 0, \dots, T$$
#
# The *lottery ticket* experiment (Frankle & Carbin 2019) asks something else: after
# pruning, reset the surviving weights to their values at initialisation and retrain.
# If that subnetwork trains as well as the dense one, it was a "winning ticket" all along.
# `IterativePruner(rewind=True)` does this rewind after every pruning step.

# %% nbgrader={"grade": false, "grade_id": "schedule", "solution": true}
#| export compression.iterative
def sparsity_schedule(step: int, steps: int, final: float, initial: float = 0.0, kind: str = "cubic") -> float:
    """The target sparsity after `step` of `steps` pruning steps (0 -> initial, steps -> final). Task 16.8

    Args:
        step: how many pruning steps are done, 0 <= step <= steps.
        steps: the number of pruning steps, >= 1.
        final, initial: sparsities in [0, 1).
        kind: "cubic" (Zhu & Gupta) or "linear".
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= steps:
        raise ValueError(f"step must be an integer in [0, {steps}], got {step!r}")
    final, initial = _check_fraction("final", final), _check_fraction("initial", initial)
    if kind not in ("cubic", "linear"):
        raise ValueError(f"kind must be 'cubic' or 'linear', got {kind!r}")
    ### BEGIN SOLUTION
    done = step / steps
    if kind == "linear":
        return initial + (final - initial) * done
    return final + (initial - final) * (1.0 - done) ** 3
    ### END SOLUTION


# %%
def test_unit_sparsity_schedule():
    """Task 16.8"""
    assert sparsity_schedule(0, 10, 0.9) == 0.0
    assert abs(sparsity_schedule(10, 10, 0.9) - 0.9) < 1e-12
    assert abs(sparsity_schedule(5, 10, 0.8, kind="linear") - 0.4) < 1e-12
    assert abs(sparsity_schedule(5, 10, 0.8) - (0.8 - 0.8 * 0.5 ** 3)) < 1e-12
    values = [sparsity_schedule(t, 10, 0.9) for t in range(11)]
    steps = np.diff(values)
    assert np.all(steps > 0) and np.all(np.diff(steps) < 0)  # rises, ever more slowly


# %% nbgrader={"grade": false, "grade_id": "iterative", "solution": true}
#| export compression.iterative
def _progress(total: int, description: str):
    """A rich progress bar on a terminal, nothing otherwise (or with TINYTORCH_QUIET=1)."""
    if os.environ.get("TINYTORCH_QUIET") == "1" or not sys.stdout.isatty():
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    bar.add_task(description, total=total)
    return bar


class IterativePruner:
    """Prune a little, fine-tune, repeat, up to `target_sparsity` in `steps` steps.

    Args:
        target_sparsity: the final sparsity (magnitude) or unit ratio (structured), in [0, 1).
        steps: number of prune + fine-tune rounds, >= 1.
        schedule: "cubic" or "linear" (see `sparsity_schedule`).
        method: "magnitude" (global unstructured) or "structured" (whole units).
        rewind: after each prune, reset surviving weights to their values when `run`
            started (the lottery-ticket rewind) and clear the optimizer's state.
    """

    def __init__(self, target_sparsity: float, steps: int, schedule: str = "cubic",
                 method: str = "magnitude", rewind: bool = False):
        self.target_sparsity = _check_fraction("target_sparsity", target_sparsity)
        sparsity_schedule(steps, steps, self.target_sparsity, kind=schedule)  # validates steps and schedule
        if method not in ("magnitude", "structured"):
            raise ValueError(f"method must be 'magnitude' or 'structured', got {method!r}")
        self.steps, self.schedule, self.method, self.rewind = int(steps), schedule, method, bool(rewind)
        self.masks: Masks | None = None

    def _prune(self, model: Module, fraction: float) -> Masks:
        if self.method == "structured":
            return structured_prune(model, fraction)
        return magnitude_prune(model, fraction)

    def run(self, model: Module, optimizer, loss_fn, loader, epochs_per_step: int = 1,
            evaluate: Callable[[Module], float] | None = None) -> list[dict]:
        """Run every step; returns one row per step: step, target, sparsity, loss, accuracy. Task 16.9"""
        _check_model(model)
        if isinstance(epochs_per_step, bool) or not isinstance(epochs_per_step, int) or epochs_per_step < 0:
            raise ValueError(f"epochs_per_step must be an integer >= 0, got {epochs_per_step!r}")
        ### BEGIN SOLUTION
        start = model.state_dict() if self.rewind else None
        history, bar = [], _progress(self.steps, f"pruning to {self.target_sparsity:.0%}")
        try:
            for step in range(1, self.steps + 1):
                target = sparsity_schedule(step, self.steps, self.target_sparsity, kind=self.schedule)
                new = self._prune(model, target)
                self.masks = new if self.masks is None else (self.masks & new)
                if start is not None:
                    model.load_state_dict(start)
                    for state in optimizer.state:
                        state.clear()
                self.masks.apply()
                epochs = fine_tune(model, optimizer, loss_fn, loader, epochs_per_step, self.masks, progress=False)
                history.append({
                    "step": step, "target": target, "sparsity": measure_sparsity(model),
                    "loss": epochs[-1]["loss"] if epochs else float("nan"),
                    "accuracy": float(evaluate(model)) if evaluate is not None else None,
                })
                if bar is not None:
                    bar.advance(bar.task_ids[0])
        finally:
            if bar is not None:
                bar.stop()
        return history
        ### END SOLUTION


# %%
def test_unit_iterative_pruner():
    """Task 16.9"""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import SGD
    from tinytorch.data.loader import DataLoader, TensorDataset

    rng = np.random.default_rng(0)
    loader = DataLoader(TensorDataset(rng.standard_normal((64, 8)).astype(np.float32), rng.integers(0, 4, 64)),
                        batch_size=16)
    model = _toy_mlp()
    pruner = IterativePruner(0.8, steps=3, schedule="linear")
    history = pruner.run(model, SGD(model.parameters(), lr=0.1, momentum=0.9), CrossEntropyLoss(), loader, 1,
                         evaluate=lambda m: 0.5)
    assert [round(row["target"], 4) for row in history] == [0.2667, 0.5333, 0.8]
    assert [row["accuracy"] for row in history] == [0.5, 0.5, 0.5]
    assert abs(history[-1]["sparsity"] - 0.8) < 1 / 368 and abs(measure_sparsity(model) - 0.8) < 1 / 368
    assert all(np.isfinite(row["loss"]) for row in history)
    params = dict(model.named_parameters())
    for name, keep in pruner.masks.items():
        assert np.all(params[name].data[~keep] == 0)


# %% [markdown]
# ## 7. Honest bytes: pruning + INT8 on disk
#
# A pruned float32 model saved as dense arrays is exactly as large as before: zeros
# cost 4 bytes too. Sparsity saves bytes only when the *format* skips the zeros, and
# every sparse format pays for saying where the survivors are:
#
# | format | bytes for n weights, nnz kept, C output channels |
# |---|---|
# | dense fp32 | 4n |
# | dense int8 | n + 4C (one float32 scale per channel) |
# | CSR int8 | nnz (values) + nnz x index width + 4(C+1) (row starts) + 4C |
# | bitmask + int8 | n/8 (one bit per weight) + nnz + 4C |
# | gaps + int8 | nnz (values) + nnz (one byte: zeros since the previous survivor) + 4C |
#
# At 90% sparsity a bitmask spends 1 bit on every weight, that is 10 bits per survivor,
# more than the 8-bit value itself: *where* the survivors are is the real price of
# unstructured sparsity. Information theory puts the floor at the entropy of the mask,
# H(0.1) = 0.47 bits per weight, 4.7 bits per survivor. The gap code (one byte per
# survivor, saying how many zeros precede it) plus a general-purpose compressor gets
# close to that floor. The file format below picks, per layer, the encoding with the
# fewest bytes, and compresses the whole payload with zlib or LZMA, whichever the
# measurement says is smaller.
#
# `compressed_size(model)` reports each format per layer, and the exact size of the file
# `save_compressed` writes, computed by writing it to memory: the report cannot drift
# from the disk.
#
# Module 15 gives us the INT8 part. Its symmetric quantizer maps 0.0 to exactly 0, so
# the zeros that pruning made survive quantization, and the bitmask stays valid.

# %%
#| export compression.storage
import copy
import hashlib
import json
import lzma
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytorch.compression.prune import _check_model as _check
from tinytorch.compression.prune import magnitude_prune
from tinytorch.core import activations as _act
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear, QuantizedTensor, quantize_int8, quantize_model

# %% nbgrader={"grade": false, "grade_id": "size-formulas", "solution": true}
#| export compression.storage
def _index_bytes(limit: int) -> int:
    """Bytes of the smallest unsigned integer type that holds values below `limit`."""
    return 1 if limit <= 2**8 else 2 if limit <= 2**16 else 4


def format_bytes(n: int, nnz: int, rows: int, cols: int, channels: int, escapes: int = 0) -> dict[str, int]:
    """Bytes of one weight array (n entries, nnz non-zero, viewed as rows x cols) per format. Task 16.10

    `channels` is the number of float32 scales (one per output channel, or 1);
    `escapes` the extra bytes the gap code needs for runs of 255 or more zeros.
    """
    ### BEGIN SOLUTION
    scales = 4 * channels
    return {
        "dense_fp32": 4 * n,
        "dense_int8": n + scales,
        "csr_int8": nnz + nnz * _index_bytes(cols) + 4 * (rows + 1) + scales,
        "bitmask_int8": (n + 7) // 8 + nnz + scales,
        "gaps_int8": nnz + escapes + nnz + scales,
    }
    ### END SOLUTION


def gap_code(keep: np.ndarray) -> np.ndarray:
    """One byte per non-zero entry of a flat mask: how many zeros come before it.

    A run of 255 or more zeros spends one extra byte (255) per 255 zeros, so the
    code stays one byte wide. Decoding is `gap_positions`.
    """
    gaps = np.diff(np.flatnonzero(keep), prepend=-1) - 1
    counts = gaps // 255 + 1
    code = np.full(int(counts.sum()), 255, np.uint8)
    code[np.cumsum(counts) - 1] = gaps % 255
    return code


def gap_positions(code: np.ndarray, n: int) -> np.ndarray:
    """The flat positions that `gap_code` encoded (for a mask of n entries)."""
    code = np.asarray(code, np.int64)
    ends = np.flatnonzero(code != 255)
    if code.size and code[-1] == 255:
        raise ValueError("gap code ends inside a run")
    escapes = np.diff(np.concatenate([[0], np.cumsum(code == 255)[ends]]), prepend=0)[1:] if ends.size else ends
    positions = np.cumsum(255 * escapes + code[ends] + 1) - 1
    if positions.size and positions[-1] >= n:
        raise ValueError(f"gap code points past the end of {n} entries")
    return positions


@dataclass
class LayerSize:
    """Bytes of one layer's weight and bias in each format."""

    name: str
    params: int
    nonzero: int
    bias_bytes: int
    formats: dict[str, int]

    def total(self, fmt: str) -> int:
        return self.formats[fmt] + self.bias_bytes


@dataclass
class SizeReport:
    """Per-layer bytes per format, other parameters (fp32), and the real file size."""

    layers: list[LayerSize]
    other_bytes: int
    file_bytes: int | None = None
    formats: tuple[str, ...] = ("dense_fp32", "dense_int8", "csr_int8", "bitmask_int8", "gaps_int8")

    def total(self, fmt: str) -> int:
        """The whole model's bytes with every prunable layer stored in `fmt`."""
        if fmt not in self.formats:
            raise ValueError(f"fmt must be one of {', '.join(self.formats)}, got {fmt!r}")
        return sum(layer.total(fmt) for layer in self.layers) + self.other_bytes

    def ratio(self, fmt: str = "file") -> float:
        """How many times smaller than dense fp32 `fmt` (or the real file) is."""
        size = self.file_bytes if fmt == "file" else self.total(fmt)
        return self.total("dense_fp32") / size

    def __str__(self) -> str:
        head = f"{'layer':<10}{'params':>10}{'nonzero':>9}" + "".join(f"{f:>14}" for f in self.formats)
        lines = [head]
        for layer in self.layers:
            lines.append(f"{layer.name:<10}{layer.params:>10,}{layer.nonzero:>9,}"
                         + "".join(f"{layer.total(f):>14,}" for f in self.formats))
        lines.append(f"{'other':<10}{'':>19}" + "".join(f"{self.other_bytes:>14,}" for _ in self.formats))
        lines.append(f"{'total':<10}{'':>19}" + "".join(f"{self.total(f):>14,}" for f in self.formats))
        if self.file_bytes is not None:
            lines.append(f"file written by save_compressed: {self.file_bytes:,} bytes "
                         f"({self.ratio():.1f}x smaller than dense fp32)")
        return "\n".join(lines)


# %% [markdown]
# ### The file format
#
# `save_compressed` writes one file: a fixed header (magic, version, codec, SHA-256 of
# the payload), then the compressed payload: a JSON description of the layers and the
# raw bytes of every array. Loading never unpickles anything; it checks the magic, the
# checksum, every dtype, shape and offset, and rebuilds the layers from the description.
# A truncated, foreign or tampered file is refused with a message that says which.

# %% nbgrader={"grade": false, "grade_id": "save-load", "solution": false}
#| export compression.storage
MAGIC = b"TTZIP\x01"
# NOTE: raw LZMA2 skips the 60-byte .xz container; lc=lp=pb=0 because int8 values and
# gap bytes carry little context from their neighbours (measured: ~8% smaller here).
_LZMA = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 0, "lp": 0, "pb": 0}]
_CODECS = {0: ("none", lambda b: b, lambda b: b),
           1: ("zlib", lambda b: zlib.compress(b, 9), zlib.decompress),
           2: ("lzma", lambda b: lzma.compress(b, lzma.FORMAT_RAW, filters=_LZMA),
               lambda b: lzma.decompress(b, lzma.FORMAT_RAW, filters=_LZMA))}
_DTYPES = {"int8", "uint8", "uint16", "uint32", "int32", "float32"}
_FLOAT_LAYERS = (Linear, Conv2d)
_QUANT_LAYERS = (QuantizedLinear, QuantizedConv2d)


class _Payload:
    """Arrays appended to one byte buffer, described in a JSON-able list."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.arrays: list[dict] = []
        self.size = 0

    def add(self, a: np.ndarray) -> int:
        a = np.ascontiguousarray(a)
        self.arrays.append({"dtype": a.dtype.name, "shape": list(a.shape), "offset": self.size})
        self.parts.append(a.tobytes())
        self.size += a.nbytes
        return len(self.arrays) - 1


def _encode_weights(q: QuantizedTensor, payload: _Payload) -> dict:
    """Store int8 values as dense, bitmask or CSR: whichever is fewest bytes."""
    values = q.values
    rows = values.shape[0]
    flat = values.reshape(rows, -1)
    nz = flat != 0
    nnz = int(np.count_nonzero(nz))
    gaps = gap_code(nz.reshape(-1))
    sizes = format_bytes(values.size, nnz, rows, flat.shape[1], q.scale.size, gaps.size - nnz)
    uniform = q.scale.size > 1 and bool(np.all(q.scale == q.scale.flat[0]))
    spec = {"shape": list(values.shape), "axis": q.axis,
            "scale": payload.add(q.scale.reshape(-1)[:1] if uniform else q.scale)}
    if uniform:  # a per-tensor scale spread over channels: store it once
        spec["channels"] = q.scale.size
    if np.any(q.zero_point != 0):
        spec["zero_point"] = payload.add(q.zero_point.astype(np.int32))
    best = min(("dense_int8", "csr_int8", "bitmask_int8", "gaps_int8"), key=sizes.__getitem__)
    if best == "gaps_int8":
        spec |= {"encoding": "gaps", "gaps": payload.add(gaps), "values": payload.add(flat[nz])}
    elif best == "dense_int8":
        spec |= {"encoding": "dense", "values": payload.add(values)}
    elif best == "bitmask_int8":
        spec |= {"encoding": "bitmask", "bits": payload.add(np.packbits(nz.reshape(-1))),
                 "values": payload.add(flat[nz])}
    else:
        index = {1: np.uint8, 2: np.uint16, 4: np.uint32}[_index_bytes(flat.shape[1])]
        starts = np.concatenate([[0], np.cumsum(np.count_nonzero(nz, axis=1))]).astype(np.uint32)
        spec |= {"encoding": "csr", "starts": payload.add(starts),
                 "columns": payload.add(np.nonzero(nz)[1].astype(index)), "values": payload.add(flat[nz])}
    return spec


def _decode_weights(spec: dict, arrays: list[np.ndarray]) -> QuantizedTensor:
    shape = tuple(spec["shape"])
    rows, cols = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    kind = spec["encoding"]
    if kind == "dense":
        values = arrays[spec["values"]].reshape(shape)
    else:
        dense = np.zeros((rows, cols), np.int8)
        if kind == "bitmask":
            mask = np.unpackbits(arrays[spec["bits"]], count=rows * cols).astype(bool).reshape(rows, cols)
        elif kind == "gaps":
            mask = np.zeros(rows * cols, bool)
            mask[gap_positions(arrays[spec["gaps"]], rows * cols)] = True
            mask = mask.reshape(rows, cols)
        elif kind == "csr":
            starts, columns = arrays[spec["starts"]].astype(np.int64), arrays[spec["columns"]].astype(np.int64)
            if starts.shape != (rows + 1,) or starts[0] != 0 or np.any(np.diff(starts) < 0) \
                    or starts[-1] != columns.size or (columns.size and columns.max() >= cols):
                raise ValueError("corrupt CSR index in compressed file")
            mask = np.zeros((rows, cols), bool)
            mask[np.repeat(np.arange(rows), np.diff(starts)), columns] = True
        else:
            raise ValueError(f"unknown weight encoding {kind!r} in compressed file")
        kept = arrays[spec["values"]]
        if kept.size != np.count_nonzero(mask):
            raise ValueError("compressed file's values do not match its index")
        dense[mask] = kept
        values = dense.reshape(shape)
    scale = arrays[spec["scale"]]
    if "channels" in spec:
        scale = np.full(int(spec["channels"]), scale[0], np.float32)
    zero_point = arrays[spec["zero_point"]] if "zero_point" in spec else np.zeros(scale.shape, np.int32)
    return QuantizedTensor(values.astype(np.int8), scale, zero_point, spec["axis"])


def _encode_bias(bias: np.ndarray | None, payload: _Payload) -> dict | None:
    """A float32 bias, stored as int8 + one scale when that is exact (see `prune_and_quantize`)."""
    if bias is None:
        return None
    bias = np.asarray(bias, np.float32)
    if bias.size and np.any(bias) and np.all(np.isfinite(bias)):
        q = quantize_int8(bias)
        if np.array_equal(q.dequantize(), bias):
            return {"int8": payload.add(q.values), "scale": payload.add(q.scale.reshape(1))}
    return {"float32": payload.add(bias)}


def _decode_bias(spec: dict | None, arrays: list[np.ndarray]) -> np.ndarray | None:
    if spec is None:
        return None
    if "float32" in spec:
        return arrays[spec["float32"]]
    return QuantizedTensor(arrays[spec["int8"]].astype(np.int8), arrays[spec["scale"]][0]).dequantize()


# %% nbgrader={"grade": false, "grade_id": "architecture", "solution": false}
#| export compression.storage
# Constructor arguments of each layer the file format can rebuild, read back by name.
_LAYER_ARGS: dict[type, tuple[str, ...]] = {
    _act.ReLU: (), _act.Sigmoid: (), _act.Tanh: (), _act.GELU: (), _act.Softmax: ("dim",),
    Flatten: (), Dropout: ("p",), MaxPool2d: ("kernel_size", "stride", "padding"), AvgPool2d: ("kernel_size", "stride", "padding"),
    BatchNorm2d: ("num_features", "eps", "momentum"),
}
_BY_NAME = {cls.__name__: cls for cls in (*_LAYER_ARGS, Linear, Conv2d, Sequential)}
_CONV_ARGS = ("stride", "padding")


def _plain(value):
    """JSON-able form of a constructor argument (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _describe(module: Module, payload: _Payload) -> dict:
    """The layer tree as JSON, with its arrays appended to `payload`."""
    if isinstance(module, CompressedModel):
        return _describe(module.model, payload)
    if isinstance(module, Sequential):
        return {"type": "Sequential", "layers": [_describe(m, payload) for m in module]}
    if isinstance(module, _QUANT_LAYERS):
        conv = isinstance(module, QuantizedConv2d)
        spec = {"type": "Conv2d" if conv else "Linear", "weight": _encode_weights(module.qweight, payload),
                "qbias": _encode_bias(module.bias, payload),
                "input_scale": None if module.input_scale is None else payload.add(
                    np.asarray(module.input_scale, np.float32))}
        if conv:
            spec["args"] = {name: _plain(getattr(module, name)) for name in _CONV_ARGS}
        return spec
    if isinstance(module, _FLOAT_LAYERS):
        # A float layer is stored as float: the file never pretends to be smaller than it is.
        spec = {"type": type(module).__name__, "float_weight": payload.add(module.weight.data),
                "bias": None if module.bias is None else payload.add(module.bias.data)}
        if isinstance(module, Conv2d):
            spec["args"] = {name: _plain(getattr(module, name)) for name in _CONV_ARGS}
        return spec
    cls = type(module)
    if cls not in _LAYER_ARGS:
        raise ValueError(f"save_compressed cannot store a {cls.__name__} layer "
                         f"(it stores {', '.join(sorted(_BY_NAME))} and quantized Linear/Conv2d)")
    spec = {"type": cls.__name__, "args": {name: _plain(getattr(module, name)) for name in _LAYER_ARGS[cls]}}
    if isinstance(module, BatchNorm2d):
        spec["arrays"] = {name: payload.add(getattr(module, name).data)
                          for name in ("weight", "bias", "running_mean", "running_var")}
    return spec


def _rebuild(spec: dict, arrays: list[np.ndarray]) -> Module:
    kind = spec.get("type")
    if kind == "Sequential":
        return Sequential(*[_rebuild(s, arrays) for s in spec["layers"]])
    if kind not in _BY_NAME:
        raise ValueError(f"compressed file names an unknown layer type {kind!r}")
    args = spec.get("args", {})
    bias = None if spec.get("bias") is None else arrays[spec["bias"]]
    conv_args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
    if kind in ("Linear", "Conv2d") and "weight" in spec:
        qweight = _decode_weights(spec["weight"], arrays)
        bias = _decode_bias(spec["qbias"], arrays)
        layer = (QuantizedConv2d(qweight, bias, **conv_args) if kind == "Conv2d" else QuantizedLinear(qweight, bias))
        if spec.get("input_scale") is not None:
            layer.input_scale = np.float32(arrays[spec["input_scale"]])
        return layer
    if kind in ("Linear", "Conv2d"):
        from tinytorch.core.tensor import Tensor

        weight = arrays[spec["float_weight"]]
        if kind == "Linear":
            layer = Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        else:
            layer = Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), bias=bias is not None, **conv_args)
        layer.weight = Tensor(weight, requires_grad=True)
        if bias is not None:
            layer.bias = Tensor(bias, requires_grad=True)
        return layer
    layer = _BY_NAME[kind](**{k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()})
    for name, index in spec.get("arrays", {}).items():
        getattr(layer, name).data[...] = arrays[index]
    return layer


# %% nbgrader={"grade": false, "grade_id": "file-io", "solution": false}
#| export compression.storage
_HEADER = len(MAGIC) + 1 + 32  # magic, codec id, SHA-256 of the uncompressed payload


def to_bytes(model: Module) -> bytes:
    """The exact bytes `save_compressed(model, path)` writes."""
    payload = _Payload()
    description = json.dumps({"format": 1, "model": _describe(_check(model), payload),
                              "arrays": payload.arrays}, separators=(",", ":")).encode()
    body = len(description).to_bytes(4, "little") + description + b"".join(payload.parts)
    # NOTE: which codec wins depends on the model; measure both, keep the smaller.
    codec, packed = min(((cid, pack(body)) for cid, (_, pack, _) in _CODECS.items()), key=lambda c: len(c[1]))
    return MAGIC + bytes([codec]) + hashlib.sha256(body).digest() + packed


def from_bytes(blob: bytes, source: str = "data") -> Module:
    """Rebuild the model that `to_bytes` stored, checking every part of the file."""
    if len(blob) < _HEADER or not blob.startswith(MAGIC[:-1]):
        raise ValueError(f"{source} is not a TinyTorch compressed model (bad magic)")
    if blob[len(MAGIC) - 1] != MAGIC[-1]:
        raise ValueError(f"{source} has format version {blob[len(MAGIC) - 1]}, this TinyTorch reads {MAGIC[-1]}")
    codec = blob[len(MAGIC)]
    if codec not in _CODECS:
        raise ValueError(f"{source} uses unknown codec {codec}")
    try:
        body = _CODECS[codec][2](blob[_HEADER:])
    except (zlib.error, lzma.LZMAError, EOFError) as err:
        raise ValueError(f"{source} is truncated or corrupt ({_CODECS[codec][0]}: {err})") from None
    if hashlib.sha256(body).digest() != blob[len(MAGIC) + 1:_HEADER]:
        raise ValueError(f"{source} does not match its checksum: it was truncated or altered")
    try:
        size = int.from_bytes(body[:4], "little")
        meta = json.loads(body[4:4 + size])
        arrays = []
        for a in meta["arrays"]:
            if a["dtype"] not in _DTYPES:
                raise ValueError(f"dtype {a['dtype']!r} not allowed")
            count = int(np.prod(a["shape"], dtype=np.int64))
            start = 4 + size + int(a["offset"])
            end = start + count * np.dtype(a["dtype"]).itemsize
            if start < 4 + size or end > len(body):
                raise ValueError("array outside the payload")
            arrays.append(np.frombuffer(body, a["dtype"], count, start).reshape(a["shape"]).copy())
        return CompressedModel(_rebuild(meta["model"], arrays))
    except (KeyError, TypeError, IndexError, json.JSONDecodeError) as err:
        raise ValueError(f"{source} has a malformed description: {err!r}") from None
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def save_compressed(model: Module, path: str | os.PathLike) -> int:
    """Write `model` (pruned, INT8) as a sparse compressed file; returns the bytes written.

    The file appears complete or not at all (written to a temporary file, then renamed).
    """
    blob = to_bytes(model)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(blob)


def load_compressed(path: str | os.PathLike) -> "CompressedModel":
    """Read a file written by `save_compressed`; never unpickles anything.

    Raises:
        ValueError: the file is truncated, foreign, of another version, or altered.
    """
    return from_bytes(Path(path).read_bytes(), source=str(path))


# %% [markdown]
# ### Pruning + INT8 in one call
#
# `prune_and_quantize` works on a copy: prune (unless the model already is), quantize
# with Module 15's `quantize_model`, and wrap the result in a `CompressedModel`, a
# `Module` you call like the original, with its size report attached.

# %% nbgrader={"grade": false, "grade_id": "prune-quantize", "solution": true}
#| export compression.storage
class CompressedModel(Module):
    """A pruned, INT8-quantized model: call it like the original."""

    def __init__(self, model: Module):
        super().__init__()
        self.model = _check(model)

    def forward(self, x):
        return self.model(x)

    def size_report(self) -> SizeReport:
        return compressed_size(self)

    def save(self, path: str | os.PathLike) -> int:
        return save_compressed(self, path)


def _weight_stats(layer: Module) -> tuple[int, int, int, int, int, int, int]:
    """(n, nnz, rows, cols, channels, bias bytes, gap-code escapes) of a float or quantized layer."""
    if isinstance(layer, _QUANT_LAYERS):
        values, channels = layer.qweight.values, layer.qweight.scale.size
        bias = 0 if layer.bias is None else 4 * np.asarray(layer.bias).size
    else:
        values, channels = layer.weight.data, layer.weight.data.shape[0]
        bias = 0 if layer.bias is None else layer.bias.data.nbytes
    rows = values.shape[0]
    nnz = int(np.count_nonzero(values))
    return values.size, nnz, rows, values.size // rows, channels, bias, gap_code(values.reshape(-1) != 0).size - nnz


def compressed_size(model: Module) -> SizeReport:
    """Bytes of `model` per storage format, per layer and in total, and its real file size. Task 16.11

    Float layers are counted as they would be after per-channel INT8 quantization;
    parameters outside Linear/Conv2d (BatchNorm) count as float32 in every format.
    """
    _check(model)
    ### BEGIN SOLUTION
    layers, other = [], 0
    for name, m in model.named_modules():
        if isinstance(m, (*_FLOAT_LAYERS, *_QUANT_LAYERS)):
            n, nnz, rows, cols, channels, bias, escapes = _weight_stats(m)
            layers.append(LayerSize(name, n, nnz, bias, format_bytes(n, nnz, rows, cols, channels, escapes)))
        elif isinstance(m, BatchNorm2d):
            other += sum(getattr(m, k).data.nbytes for k in ("weight", "bias", "running_mean", "running_var"))
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer (float or quantized) to size")
    try:
        file_bytes = len(to_bytes(model))
    except ValueError:
        file_bytes = None  # a layer the file format cannot store
    return SizeReport(layers, other, file_bytes)
    ### END SOLUTION


def _compact(layer: Module, weight: np.ndarray, per_channel: bool, int8_bias: bool) -> None:
    """Per-tensor scale for the float `weight` and/or an int8-exact bias, in place on a quantized layer."""
    if not per_channel:
        q = quantize_int8(weight)
        channels = weight.shape[0]
        layer.qweight = QuantizedTensor(q.values, np.full(channels, q.scale, np.float32),
                                        np.zeros(channels, np.int32), axis=0)
    if int8_bias and layer.bias is not None and np.any(layer.bias):
        layer.bias = quantize_int8(layer.bias).dequantize()


def prune_and_quantize(model: Module, sparsity: float | None = 0.9, scope: str = "global",
                       calibration_data=None, per_channel: bool = True, int8_bias: bool = False) -> "CompressedModel":
    """A pruned, INT8-quantized copy of `model` (the input is not changed). Task 16.12

    Args:
        model: a trained float model.
        sparsity: magnitude-prune the copy to this sparsity first; `None` keeps the
            model's own zeros (for a model already pruned and fine-tuned).
        scope: "global" or "layer", as in `magnitude_prune`.
        calibration_data: passed to Module 15's `quantize_model`.
        per_channel: one weight scale per output channel (Module 15's default); False
            uses one scale per layer, 4 bytes per channel fewer.
        int8_bias: round biases to int8 with one scale per layer (stored as int8).

    Returns:
        A `CompressedModel`; pruned zeros are exactly zero in its int8 weights.
    """
    _check(model)
    ### BEGIN SOLUTION
    work = copy.deepcopy(model)
    if sparsity is not None:
        magnitude_prune(work, sparsity, scope=scope)
    quantized = quantize_model(work, calibration_data)
    floats = dict(work.named_modules())
    for name, layer in quantized.named_modules():
        if isinstance(layer, _QUANT_LAYERS):
            _compact(layer, floats[name].weight.data, per_channel, int8_bias)
    return CompressedModel(quantized)
    ### END SOLUTION


# %%
def test_unit_storage_round_trip():
    """Tasks 16.10, 16.11 and 16.12"""
    import tempfile as _tempfile

    model = _toy_mlp()
    small = prune_and_quantize(model, 0.8)
    assert np.count_nonzero(model[0].weight.data) == model[0].weight.data.size  # input untouched
    report = compressed_size(small)
    with _tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "toy.ttz"
        assert save_compressed(small, path) == path.stat().st_size == report.file_bytes
        loaded = load_compressed(path)
    from tinytorch.core.tensor import Tensor

    x = Tensor(np.random.default_rng(0).standard_normal((4, 8)))
    assert np.array_equal(small(x).data, loaded(x).data)
    sizes = format_bytes(n=1000, nnz=100, rows=10, cols=100, channels=10)
    assert sizes == {"dense_fp32": 4000, "dense_int8": 1040, "csr_int8": 284, "bitmask_int8": 265, "gaps_int8": 240}
    keep = np.zeros(700, bool)
    keep[[0, 3, 600, 699]] = True
    code = gap_code(keep)
    assert code.tolist() == [0, 2, 255, 255, 86, 98]
    assert gap_positions(code, 700).tolist() == [0, 3, 600, 699]


# %% [markdown]
# ## 8. Measure it yourself
#
# The claims people make about pruning ("90% of the weights can go", "10x smaller",
# "prune then quantize for 40x") are measurements on someone else's model. The cells
# below make them on ours, the digits MLP (64-128-64-10) from Module 07, and print
# what they find. Set `TINYTORCH_QUICK=1` for a fast smoke run (`tito test` does); the
# figures in ABOUT.md come from a full run of this file.

# %%
import copy
import tempfile
import time as _time

QUICK = os.environ.get("TINYTORCH_QUICK") == "1"
# Quick runs (under test) draw their plots in a temporary folder, not in your project.
PLOTS = Path(os.environ.get("TINYTORCH_PLOTS") or (tempfile.mkdtemp() if QUICK else "compression-plots"))


def digits_setup(seed: int = 0):
    """The digits loaders and a fresh 64-128-64-10 MLP."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.tensor import manual_seed
    from tinytorch.data.loader import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    x_train, y_train, x_test, y_test = load_digits(flat=True)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=seed)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test))
    manual_seed(seed)
    model = Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))
    return model, train, test


def analysis_one_shot_vs_iterative(sparsities=(0.5, 0.8, 0.9, 0.95, 0.98)):
    """Accuracy after one-shot pruning (with the same fine-tuning budget) vs iterative pruning."""
    from tinytorch.compression.iterative import IterativePruner, fine_tune
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate, fit

    epochs, steps, per_step, final = (2, 2, 1, 1) if QUICK else (25, 5, 5, 10)
    sparsities = sparsities[-1:] if QUICK else sparsities
    model, train, test = digits_setup()
    loss_fn = CrossEntropyLoss()
    fit(model, Adam(model.parameters(), lr=3e-3), loss_fn, train, epochs, progress=False)
    dense = evaluate(model, test)
    trained = model.state_dict()
    rows, pruned = [], {}
    for target in sparsities:
        model.load_state_dict(trained)
        masks = magnitude_prune(model, target)
        no_tuning = evaluate(model, test)
        fine_tune(model, Adam(model.parameters(), lr=5e-3), loss_fn, train, steps * per_step + final, masks)
        one_shot = evaluate(model, test)
        model.load_state_dict(trained)
        opt = Adam(model.parameters(), lr=5e-3)
        pruner = IterativePruner(target, steps)
        pruner.run(model, opt, loss_fn, train, per_step)
        fine_tune(model, opt, loss_fn, train, final, pruner.masks)
        rows.append((target, no_tuning, one_shot, evaluate(model, test)))
        pruned[target] = copy.deepcopy(model)
    print(f"dense accuracy {dense:.4f} (same fine-tuning epochs for both methods)")
    print(f"{'sparsity':>9} {'pruned, no tuning':>18} {'one-shot + tune':>16} {'iterative':>10}")
    for target, raw, one, it in rows:
        print(f"{target:>9.0%} {raw:>18.4f} {one:>16.4f} {it:>10.4f}")
    _plot_accuracy(dense, rows)
    model.load_state_dict(trained)
    return model, pruned, test


def _plot_accuracy(dense, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    xs = [100 * r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(100 * dense, color="gray", linestyle="--", label="dense")
    ax.plot(xs, [100 * r[1] for r in rows], "x:", label="pruned, no fine-tuning")
    ax.plot(xs, [100 * r[2] for r in rows], "o-", label="one-shot + fine-tuning")
    ax.plot(xs, [100 * r[3] for r in rows], "s-", label="iterative (cubic schedule)")
    ax.set(xlabel="sparsity (%)", ylabel="test accuracy (%)", title="Digits MLP: pruning 64-128-64-10")
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOTS / "accuracy_vs_sparsity.png", dpi=120)
    plt.close(fig)


def analysis_bytes_per_format(sparsities=(0.0, 0.5, 0.8, 0.9, 0.95, 0.99)):
    """Bytes of the MLP per format across sparsity (untrained weights: sizes do not depend on training)."""
    model, _, _ = digits_setup()
    sparsities = sparsities[2:4] if QUICK else sparsities
    print(f"{'sparsity':>9}" + "".join(f"{f:>14}" for f in SizeReport.formats) + f"{'file':>10}{'ratio':>8}")
    for s in sparsities:
        small = prune_and_quantize(model, s)
        report = compressed_size(small)
        print(f"{s:>9.0%}" + "".join(f"{report.total(f):>14,}" for f in report.formats)
              + f"{report.file_bytes:>10,}{report.ratio():>7.1f}x")


def analysis_prune_plus_int8(dense_model, pruned: dict, test):
    """Accuracy and real file bytes: dense fp32, INT8 alone, pruned + INT8 (two settings)."""
    from tinytorch.core.training import evaluate

    weights = sum(layer.weight.data.nbytes for _, layer in prunable_layers(dense_model))
    print(f"dense float32 weights: {weights:,} bytes, accuracy {evaluate(dense_model, test):.4f}")
    variants = [("INT8 only", dense_model, {}), *[
        (f"{t:.0%} + INT8{label}", m, kw) for t, m in pruned.items()
        for label, kw in (("", {}), (", per-tensor scale, int8 bias", {"per_channel": False, "int8_bias": True}))]]
    print(f"{'variant':<40}{'file bytes':>11}{'vs fp32 weights':>17}{'accuracy':>10}")
    for label, model, kw in variants:
        small = prune_and_quantize(model, sparsity=None, **kw)
        size = compressed_size(small).file_bytes
        print(f"{label:<40}{size:>11,}{weights / size:>16.1f}x{evaluate(small, test):>10.4f}")


def analysis_unstructured_latency():
    """Unstructured sparsity does not change the work a dense matmul does: time it."""
    from tinytorch.core.tensor import Tensor
    from tinytorch.profiling import measure_latency

    model, _, _ = digits_setup()
    model.eval()
    x = Tensor(np.random.default_rng(0).standard_normal((256, 64)))
    repeats = 5 if QUICK else 50
    dense = measure_latency(model, x, repeats=repeats)
    magnitude_prune(model, 0.9)
    sparse = measure_latency(model, x, repeats=repeats)
    print(f"batch 256: dense {dense * 1e6:.0f} us, 90% unstructured sparse {sparse * 1e6:.0f} us "
          f"(ratio {dense / sparse:.2f}: the zeros are still multiplied)")


# %%
if __name__ == "__main__":
    test_unit_storage_round_trip()
    _start = _time.perf_counter()
    analysis_prune_plus_int8(*analysis_one_shot_vs_iterative())
    analysis_bytes_per_format()
    analysis_unstructured_latency()
    print(f"analyses took {_time.perf_counter() - _start:.1f} s; plots in {PLOTS}/")


# %%
def test_module():
    """Run every inline test of Module 16."""
    test_unit_measure_sparsity()
    test_unit_smallest_k_masks()
    test_unit_magnitude_prune()
    test_unit_masks_apply()
    test_unit_sensitivity_scan()
    test_unit_structured_prune()
    test_unit_masks_survive_optimizer()
    test_unit_sparsity_schedule()
    test_unit_iterative_pruner()
    test_unit_storage_round_trip()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 16: all inline tests passed")
