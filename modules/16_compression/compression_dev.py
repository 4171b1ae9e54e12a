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
# 8. **Measure it yourself**: one-shot vs iterative, bytes per format, prune + INT8.
# 9. **Smaller and faster for real**: remove pruned units, run sparse layers, and
#    measure when zeros become speed.
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
from tinytorch.core.spatial import Conv2d

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
# only one order statistic. `ndarray.partition` finds it in O(n) (introselect), in
# place, but still needs all n magnitudes in one buffer: a full copy of the weights.
# A random sample does better:
#
# 1. sort a sample of 65,536 magnitudes; the threshold's rank k/n in the sample, plus
#    and minus five standard errors, brackets the threshold between `lo` and `hi`;
# 2. one pass over the layers counts the weights below `lo` and gathers the few inside
#    `[lo, hi]` (about 1% of n);
# 3. partitioning that small set gives the exact k-th smallest |w|, the threshold t. If
#    the bracket missed (it almost never does), partition all magnitudes instead: the
#    sample changes the speed, never the answer;
# 4. per layer, keep `|w| > t`; weights equal to t are ties, and we prune just enough of
#    them, in order, to hit k exactly; multiply each weight by its mask, in place.
#
# On 16.8M weights this is about 0.1 s with a fraction of the weights' bytes of extra
# memory (`benchmarks/bench_prune.py` measures it beside `torch.nn.utils.prune`).
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
        picks = np.concatenate([np.abs(f[rng.integers(0, f.size, max(1, sample * f.size // n))])
                                for f in flat if f.size])
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

# %%
#| export compression.structured
import numpy as np

from tinytorch.compression.prune import Masks, _check_fraction, _check_model, _PRUNABLE, prunable_layers
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor
from tinytorch.core.spatial import BatchNorm2d, Conv2d

# %% nbgrader={"grade": false, "grade_id": "structured-prune", "solution": true}
#| export compression.structured
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
# ### Units that cannot matter
#
# Unstructured pruning leaves *dead units* behind: a hidden neuron whose outgoing
# weights are all zero contributes nothing, so its incoming weights and bias are wasted
# bytes; a neuron whose incoming weights are all zero outputs a constant, `act(b)`, which
# the next layer can absorb into its bias. Zeroing both kinds changes what the network
# computes by at most a float rounding, and every extra zero is a byte saved on disk.
# `drop_dead_units` does this for chains of Linear layers joined by element-wise
# activations, repeating until nothing changes (one dead unit can kill another).

# %%
#| export compression.structured
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
    _check_model(model)
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


# %%
def test_unit_drop_dead_units():
    from tinytorch.core.tensor import Tensor

    model = _toy_mlp()
    model[0].weight.data[3] = 0.0       # unit 3 of layer 0: constant output relu(b)
    model[2].weight.data[:, 5] = 0.0    # unit 5 of layer 0: nobody listens
    model[4].weight.data[:, 7] = 0.0    # unit 7 of layer 2: nobody listens
    x = Tensor(np.random.default_rng(0).standard_normal((6, 8)))
    before = model(x).data.copy()
    nonzero = sum(int(np.count_nonzero(p.data)) for p in model.parameters())
    zeroed = drop_dead_units(model)
    assert np.allclose(model(x).data, before, atol=1e-5)
    assert not model[0].weight.data[5].any() and model[0].bias.data[5] == 0
    assert not model[2].weight.data[7].any() and model[2].bias.data[7] == 0
    assert not model[2].weight.data[:, 3].any() and model[0].bias.data[3] == 0
    assert zeroed == nonzero - sum(int(np.count_nonzero(p.data)) for p in model.parameters()) > 30
    assert drop_dead_units(model) == 0


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
from collections.abc import Callable

import numpy as np

from tinytorch.compression.prune import Masks, _check_fraction, _check_model, magnitude_prune, measure_sparsity
from tinytorch.compression.structured import structured_prune
from tinytorch.core.layers import Module
from tinytorch.core.training import fit, progress_bar

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
# `IterativePruner(rewind_to=state)` does this rewind after every pruning step, to a
# `model.state_dict()` you saved before training.

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
from collections.abc import Mapping


class IterativePruner:
    """Prune a little, fine-tune, repeat, up to `target_sparsity` in `steps` steps.

    Args:
        target_sparsity: the final sparsity (magnitude) or unit ratio (structured), in [0, 1).
        steps: number of prune + fine-tune rounds, >= 1.
        schedule: "cubic" or "linear" (see `sparsity_schedule`).
        method: "magnitude" (global unstructured) or "structured" (whole units).
        rewind_to: a `model.state_dict()` saved before training (or after a few epochs,
            "late rewinding"). After each prune, every parameter and buffer is reset to
            it, pruned weights stay 0, and the optimizer's state is cleared: the
            lottery-ticket rewind. None (default) keeps the trained weights.
    """

    def __init__(self, target_sparsity: float, steps: int, schedule: str = "cubic",
                 method: str = "magnitude", rewind_to: Mapping[str, np.ndarray] | None = None):
        self.target_sparsity = _check_fraction("target_sparsity", target_sparsity)
        sparsity_schedule(steps, steps, self.target_sparsity, kind=schedule)  # validates steps and schedule
        if method not in ("magnitude", "structured"):
            raise ValueError(f"method must be 'magnitude' or 'structured', got {method!r}")
        if rewind_to is not None and not isinstance(rewind_to, Mapping):
            raise TypeError(f"rewind_to must be a state dict (name -> array) or None, got {type(rewind_to).__name__}")
        self.steps, self.schedule, self.method = int(steps), schedule, method
        # NOTE: a copy, so training the model after saving its state cannot move the rewind point.
        self.rewind_to = None if rewind_to is None else {k: np.array(v, copy=True) for k, v in rewind_to.items()}
        self.masks: Masks | None = None

    def _check_rewind(self, model: Module) -> None:
        own = model.state_dict()
        wrong = sorted(set(own) ^ set(self.rewind_to)) or [
            k for k in own if own[k].shape != self.rewind_to[k].shape]
        if wrong:
            raise ValueError(f"rewind_to does not match the model: names or shapes differ at {wrong[:5]}")

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
        if self.rewind_to is not None:
            self._check_rewind(model)
        ### BEGIN SOLUTION
        history = []
        with progress_bar(self.steps, f"pruning to {self.target_sparsity:.0%}") as bar:
            for step in range(1, self.steps + 1):
                target = sparsity_schedule(step, self.steps, self.target_sparsity, kind=self.schedule)
                new = self._prune(model, target)
                self.masks = new if self.masks is None else (self.masks & new)
                if self.rewind_to is not None:
                    model.load_state_dict(self.rewind_to)
                    for state in optimizer.state:
                        state.clear()
                self.masks.apply()
                epochs = (fine_tune(model, optimizer, loss_fn, loader, epochs_per_step, self.masks, progress=False)
                          if epochs_per_step else [])  # 0 epochs: prune (and rewind) only
                history.append({
                    "step": step, "target": target, "sparsity": measure_sparsity(model),
                    "loss": epochs[-1]["loss"] if epochs else float("nan"),
                    "accuracy": float(evaluate(model)) if evaluate is not None else None,
                })
                bar.advance()
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

    # rewind_to: survivors take their saved values, pruned weights stay 0, optimizer state is cleared
    model = _toy_mlp()
    start = model.state_dict()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    fine_tune(model, opt, CrossEntropyLoss(), loader, 1, progress=False)  # trained, momentum filled
    pruner = IterativePruner(0.5, steps=1, rewind_to=start)
    pruner.run(model, opt, CrossEntropyLoss(), loader, 0)
    for name, p in model.named_parameters():
        kept = pruner.masks[name] if name in pruner.masks else np.ones(p.shape, bool)
        assert np.array_equal(p.data[kept], start[name][kept]) and np.all(p.data[~kept] == 0), name
    assert abs(measure_sparsity(model) - 0.5) < 1 / 368 and all(not s for s in opt.state)


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
#| export compression.formats
from dataclasses import dataclass

import numpy as np

from tinytorch.quantization import QuantizedTensor, quantize_int8

# %% nbgrader={"grade": false, "grade_id": "size-formulas", "solution": true}
#| export compression.formats
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
# `save_compressed` writes one file: a header (magic, version, codec, a checksum of the
# payload), then a compressed payload holding a JSON description of the layers and the
# raw bytes of every array. Each layer gets the encoding above with the fewest bytes.
# Loading never unpickles anything and refuses a truncated, foreign or altered file.
# That code is given, in `storage_given.py` beside this lesson (exported to
# `tinytorch/compression/encodings.py` and `container.py`): read it if you are curious.

# %% [markdown]
# ### Pruning + INT8 in one call
#
# `prune_and_quantize` works on a copy: prune (unless the model already is), quantize
# with Module 15's `quantize_model`, and wrap the result in a `CompressedModel`, a
# `Module` you call like the original, with its size report attached.

# %%
#| export compression.storage
import copy
import os
from pathlib import Path

import numpy as np

from tinytorch.compression.container import (_FLOAT_LAYERS, _QUANT_LAYERS, CompressedModel, load_compressed,
                                            save_compressed, to_bytes)
from tinytorch.compression.formats import LayerSize, SizeReport, format_bytes, gap_code
from tinytorch.compression.prune import _check_model as _check
from tinytorch.compression.prune import magnitude_prune
from tinytorch.compression.structured import drop_dead_units
from tinytorch.core.layers import Module
from tinytorch.core.spatial import BatchNorm2d
from tinytorch.quantization import QuantizedTensor, quantize_int8, quantize_model

# %% nbgrader={"grade": false, "grade_id": "prune-quantize", "solution": true}
#| export compression.storage
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
                       calibration_data=None, per_channel: bool = True, int8_bias: bool = False,
                       drop_dead: bool = True) -> "CompressedModel":
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
        drop_dead: also zero the weights of units that cannot change the output
            (`drop_dead_units`), so the copy may be sparser than `sparsity`.

    Returns:
        A `CompressedModel`; pruned zeros are exactly zero in its int8 weights.
    """
    _check(model)
    ### BEGIN SOLUTION
    work = copy.deepcopy(model)
    if sparsity is not None:
        magnitude_prune(work, sparsity, scope=scope)
    if drop_dead:
        drop_dead_units(work)
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

from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor

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
    """Bytes of the MLP per format across sparsity, on its initial weights.

    Dead units are kept (`drop_dead=False`): on untrained weights, global pruning can
    empty a whole layer, and the network would collapse to a constant.
    """
    model, _, _ = digits_setup()
    sparsities = sparsities[2:4] if QUICK else sparsities
    print(f"{'sparsity':>9}" + "".join(f"{f:>14}" for f in SizeReport.formats) + f"{'file':>10}{'ratio':>8}")
    for s in sparsities:
        small = prune_and_quantize(model, s, drop_dead=False)
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
    from tinytorch.profiling import time_interleaved
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    dense, _, _ = digits_setup()
    pruned = copy.deepcopy(dense)
    magnitude_prune(pruned, 0.9)
    dense.eval(), pruned.eval()
    x = Tensor(np.random.default_rng(0).standard_normal((256, 64)))
    with no_grad():  # interleaved rounds: load from other programs hits both alike
        t_dense, t_pruned = time_interleaved([lambda: dense(x), lambda: pruned(x)], repeats=5 if QUICK else 30)
    print(f"batch 256: dense {t_dense * 1e6:.0f} us, 90% unstructured sparse {t_pruned * 1e6:.0f} us: "
          f"ratio {t_dense / t_pruned:.2f} (a dense matmul multiplies the zeros too)")


# %%
if __name__ == "__main__":
    _start = _time.perf_counter()
    analysis_prune_plus_int8(*analysis_one_shot_vs_iterative())
    analysis_bytes_per_format()
    analysis_unstructured_latency()
    print(f"section 8 analyses took {_time.perf_counter() - _start:.1f} s; plots in {PLOTS}/")


# %% [markdown]
# ## 9. Smaller and faster for real: removing units, running sparse
#
# The most common complaint about pruning libraries is that a pruned model is neither
# smaller nor faster. After `structured_prune(model, 0.5)` half the rows of every hidden
# weight are zero, yet every array has its old shape and every matmul multiplies the
# zeros as diligently as before. PyTorch's `torch.nn.utils.prune` is no different: it
# keeps the dense weight and multiplies a mask into it on every call.
#
# Two ways turn zeros into speed:
#
# 1. **Remove the pruned units** (structured sparsity). A zero row of layer k produces a
#    zero output; the matching column of layer k+1 only ever multiplies that zero. Drop
#    both and the model is a smaller *dense* model: fewer bytes, fewer FLOPs, and the
#    same fast BLAS matmul. This works on any hardware.
# 2. **Skip the zeros inside a layer** (unstructured sparsity). Store only the non-zero
#    weights (CSR) and multiply only those. Each stored weight costs more than a dense
#    one (an index to read, an irregular memory access), so this wins only above some
#    sparsity, and where that crossover lies depends on the batch size and the machine.
#    We measure it instead of assuming it.

# %% [markdown]
# ### 9.1 Which units may go: follow each unit to the next layer
#
# Removing output unit j of a layer is exact only if what it sends to the next `Linear`
# or `Conv2d` is exactly zero, for every input. Walk the layers in between:
#
# - the unit's **weight row** must be pruned in the masks, and its **bias** must be 0
#   (a dead ReLU unit with a positive bias still sends `relu(b)` onward);
# - a **BatchNorm2d** turns a zero channel into `beta - mean * gamma / std`, so its scale
#   and shift must be 0 too (`structured_prune` zeroes them; other masks may not);
# - **ReLU, Tanh, GELU, Dropout, pooling** map 0 to 0 channel by channel: they pass;
# - **Sigmoid** maps 0 to 0.5: a removed unit would be missed, so all its units stay;
# - **Softmax** normalises over the units: removing any changes all the others, so it is
#   an error, as is any layer we do not know (an error, never a wrong model);
# - a **Flatten** after a conv turns channel c of an `H x W` map into the block of
#   features `[c*H*W, (c+1)*H*W)` of the next Linear: one channel, one block of columns.
#
# The last Linear/Conv2d keeps all its outputs: they are the classes. And at least one
# unit of every layer stays (an all-zero unit changes nothing and keeps shapes valid).
# `plan_cut` makes this decision for one layer; it returns the keep-mask, the
# BatchNorms that lose the same channels, and how many consumer inputs belong to one unit.

# %% nbgrader={"grade": false, "grade_id": "surgery", "solution": true}
#| export compression.surgery
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


# NOTE: np.compress along an axis gives a new C-ordered array; boolean indexing of
# columns (w[:, keep]) gives one in another order, and with the copy to C order it
# takes over ten times longer on a 1024 x 2048 weight.
def _keep_outputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", np.compress(keep, layer.weight.data, axis=0))
    if layer.bias is not None:
        _replace(layer, "bias", np.compress(keep, layer.bias.data))
    setattr(layer, "out_features" if isinstance(layer, Linear) else "out_channels", int(keep.sum()))


def _keep_inputs(layer: Module, keep: np.ndarray) -> None:
    _replace(layer, "weight", np.compress(keep, layer.weight.data, axis=1))
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
        # the masked model, whether or not masks were applied
        param.data = param.data * masks[name] if name in masks else param.data.copy()
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


# %% nbgrader={"grade": true, "grade_id": "test-plan-cut", "locked": true, "points": 3}
def test_unit_plan_cut():
    """Task 16.13"""
    from tinytorch.core.activations import ReLU, Sigmoid, Softmax
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    model = Sequential(Linear(4, 6), ReLU(), Linear(6, 3))
    masks = structured_prune(model, 0.5)
    cut = plan_cut(sequential_layers(model), 0, 2, masks)
    np.testing.assert_array_equal(cut.keep, masks["0.bias"])
    model[0].bias.data[np.flatnonzero(~cut.keep)[0]] = 0.3  # relu(0.3) would still reach layer 2
    assert plan_cut(sequential_layers(model), 0, 2, masks).keep.sum() == 4
    sig = Sequential(Linear(4, 6), Sigmoid(), Linear(6, 3))
    assert plan_cut(sequential_layers(sig), 0, 2, structured_prune(sig, 0.5)).keep.all()
    soft = Sequential(Linear(4, 6), Softmax(), Linear(6, 3))
    try:
        plan_cut(sequential_layers(soft), 0, 2, structured_prune(soft, 0.5))
    except ValueError as err:
        assert "Softmax" in str(err)
    else:
        raise AssertionError("a Softmax between pruned layers must raise")
    cnn = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2), Flatten(), Linear(16, 2))
    cut = plan_cut(sequential_layers(cnn), 0, 5, structured_prune(cnn, 0.5))
    assert cut.keep.sum() == 2 and cut.channels == [cnn[1]] and cut.block == 4  # 2x2 map per channel


# %% [markdown]
# ### 9.2 The smaller model, and why it needs a new optimizer
#
# `remove_pruned_units(model, masks)` copies the model (the original is not touched),
# flattens nested Sequentials, plans every producer -> consumer pair on the unchanged
# copy, and only then slices: rows of the producer (weight and bias), channels of the
# BatchNorms on the way (scale, shift and both running statistics), columns of the
# consumer (`np.repeat(keep, block)` after a Flatten). Its outputs equal the masked
# model's, up to float32 rounding of sums taken in a different order.
#
# To fine-tune the smaller model, build a **new optimizer** on its parameters. The old
# one cannot follow: its `params` list holds the old Tensors, which the new model does
# not use, so stepping it trains a model nobody runs, and its state (momentum, Adam's
# two moments) has the old shapes, `(2048, 512)` where the new weight is `(1024, 512)`.
# Moments of units that no longer exist have no place in the new arrays anyway. The
# masks' post-step hook belongs to the old model as well; the remaining weights of a
# structured-pruned model have no zeros left to protect.

# %% nbgrader={"grade": true, "grade_id": "test-remove-pruned-units", "locked": true, "points": 3}
def test_unit_remove_pruned_units():
    """Task 16.14"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(0)
    cnn = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                     Conv2d(4, 6, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(24, 3))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 1, 8, 8)))
    cnn(x)  # training-mode pass: the running statistics are no longer 0 and 1
    masks = structured_prune(cnn, 0.5)
    small = remove_pruned_units(cnn, masks)
    assert [tuple(p.shape) for p in small.parameters()] == [(2, 1, 3, 3), (2,), (2,), (2,), (3, 2, 3, 3), (3,),
                                                            (3, 12), (3,)]
    cnn.eval()
    small.eval()
    assert np.abs(small(x).data - cnn(x).data).max() < 1e-5
    assert cnn[0].weight.shape == (4, 1, 3, 3)  # the input model is not changed


# %% nbgrader={"grade": true, "grade_id": "test-fine-tune-after-removal", "locked": true, "points": 2}
def test_unit_fine_tune_after_removal():
    """Task 16.14"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(1)
    model = Sequential(Linear(8, 32), ReLU(), Linear(32, 16), ReLU(), Linear(16, 4))
    rng = np.random.default_rng(1)
    x, y = Tensor(rng.standard_normal((64, 8))), rng.integers(0, 4, 64)
    old = Adam(model.parameters(), lr=1e-2)
    loss_fn = CrossEntropyLoss()
    loss_fn(model(x), y).backward()
    old.step()  # the old optimizer now holds (32, 8)-shaped moments
    small = remove_pruned_units(model, structured_prune(model, 0.5))
    assert old.state[0]["exp_avg"].shape == (32, 8) and small[0].weight.shape == (16, 8)
    assert not {id(p) for p in small.parameters()} & {id(p) for p in old.params}
    new = Adam(small.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        new.zero_grad()
        loss = loss_fn(small(x), y)
        loss.backward()
        new.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.95 * losses[0], losses


# %% [markdown]
# ### 9.3 A sparse path for unstructured sparsity
#
# Magnitude pruning leaves zeros scattered everywhere: no unit can go. To gain speed
# from them we must stop storing and multiplying them. **CSR** (compressed sparse row)
# keeps three arrays: the non-zero `values` row after row, the column `indices` of each,
# and `indptr`, where row i's entries start (`indptr[i]:indptr[i+1]`).
#
# `y = x W^T` then needs, for output i, the sum over row i's entries of
# `values[k] * x[:, indices[k]]`. In NumPy: gather the inputs (`np.take(x, indices,
# axis=1)`), multiply by `values`, and add up each row's run with `np.add.reduceat` at
# the row starts. Two traps: reduceat returns the *first element* for an empty run, not
# 0, so only the rows holding entries are reduced; and a batch of 64 would make a
# `64 x nnz` temporary, so the batch goes through in chunks. scipy (the optional extra
# `tinytorch[sparse]`) has the same product as compiled loops; `SparseLinear` uses it
# when it is installed and `csr_matmul` otherwise. Both are tested against the dense layer.
#
# `SparseLinear` is for **inference only**: it has no trainable parameters, so a
# training loop could not update its weights. Rather than stay silently frozen, its
# forward pass raises in training mode with gradients on; gradients do flow through it
# to its input. Prune and fine-tune the dense model (masks attached), then convert.
#
# `to_sparse(model, min_sparsity, batch_size)` times every sufficiently sparse Linear
# both ways on its real weights at the batch size you will serve (`plan_sparse`, with
# the interleaved medians of `time_interleaved`), and swaps in a SparseLinear only
# where it was measured faster.

# %% nbgrader={"grade": false, "grade_id": "sparse", "solution": true}
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
    """The CSR form of a 2-D array: `(values, column indices, row pointers)`. Task 16.15

    Row i's non-zeros are `values[indptr[i]:indptr[i+1]]`, in columns
    `indices[indptr[i]:indptr[i+1]]` (increasing); `indptr` has rows + 1 entries.

    Raises:
        ValueError: `weight` is not 2-D.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    ### BEGIN SOLUTION
    rows, cols = np.nonzero(weight)  # row-major order: each row's entries come together
    indptr = np.zeros(weight.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=weight.shape[0]), out=indptr[1:])
    return weight[rows, cols], cols.astype(np.int64), indptr
    ### END SOLUTION


def csr_matmul(values: np.ndarray, indices: np.ndarray, indptr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x @ W.T` for `x (B, in)` and `W (rows, in)` given in CSR form, with NumPy only. Task 16.16

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
    ### BEGIN SOLUTION
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
    ### END SOLUTION
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
        """Compute x W^T + b for `x (..., in_features)`; the gradient reaches `x`, never the weights. Task 16.17

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
        ### BEGIN SOLUTION
        out = self._multiply(x.data.reshape(-1, self.in_features))
        if self.bias is not None:
            out += self.bias
        out = out.reshape(x.shape[:-1] + (self.out_features,))

        def backward(grad: np.ndarray) -> tuple[np.ndarray]:
            gx = self._multiply(grad.reshape(-1, self.out_features), transposed=True)
            return (gx.reshape(x.shape),)

        return Tensor.from_op(out, (x,), backward, op="sparse_linear")
        ### END SOLUTION

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
    """A copy of `model`, in eval mode, with a SparseLinear wherever CSR was measured faster. Task 16.18

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
    ### BEGIN SOLUTION
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
    ### END SOLUTION
    return replaced.eval()


# %% nbgrader={"grade": true, "grade_id": "test-to-csr", "locked": true, "points": 1}
def test_unit_to_csr():
    """Task 16.15"""
    w = np.array([[0, 2, 0, 3], [0, 0, 0, 0], [4, 0, 0, 5]], dtype=np.float32)
    values, indices, indptr = to_csr(w)
    np.testing.assert_array_equal(values, [2, 3, 4, 5])
    np.testing.assert_array_equal(indices, [1, 3, 0, 3])
    np.testing.assert_array_equal(indptr, [0, 2, 2, 4])


# %% nbgrader={"grade": true, "grade_id": "test-csr-matmul", "locked": true, "points": 2}
def test_unit_csr_matmul():
    """Task 16.16"""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0.0
    w[3] = 0.0  # an empty row
    x = rng.standard_normal((4, 9)).astype(np.float32)
    np.testing.assert_allclose(csr_matmul(*to_csr(w), x), x @ w.T, atol=1e-5)


# %% nbgrader={"grade": true, "grade_id": "test-sparse-linear", "locked": true, "points": 2}
def test_unit_sparse_linear():
    """Task 16.17"""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(2)
    linear = Linear(30, 20)
    magnitude_prune(Sequential(linear), 0.9)
    x = Tensor(np.random.default_rng(2).standard_normal((3, 30)))
    for backend in ("numpy", "scipy"):
        try:
            layer = SparseLinear.from_linear(linear, backend)
        except ValueError:  # scipy is not installed: only the NumPy path exists
            continue
        np.testing.assert_allclose(layer(x).data, linear(x).data, atol=1e-5)
        layer.train()
        try:
            layer(x)
        except RuntimeError as err:
            assert "inference-only" in str(err)
        else:
            raise AssertionError("training mode with gradients on must raise")
        with no_grad():
            layer(x)


# %% nbgrader={"grade": true, "grade_id": "test-to-sparse", "locked": true, "points": 2}
def test_unit_to_sparse():
    """Task 16.18"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(3)
    model = Sequential(Linear(16, 32), ReLU(), Linear(32, 4))
    magnitude_prune(model, 0.9)
    plan = [SparseChoice("0", (32, 16), 0.9, 2e-6, 1e-6), SparseChoice("2", (4, 32), 0.9, 1e-6, 2e-6)]
    fast = to_sparse(model, plan=plan)  # the plan says: CSR wins for layer 0 only
    assert isinstance(fast[0], SparseLinear) and isinstance(fast[2], Linear) and isinstance(model[0], Linear)
    x = Tensor(np.random.default_rng(3).standard_normal((5, 16)))
    model.eval()
    np.testing.assert_allclose(fast(x).data, model(x).data, atol=1e-5)


# %% [markdown]
# ### 9.4 Where does the time go? Layer by layer
#
# A whole-model speedup hides which layers earned it. `compare_layer_times(before,
# after, x)` runs two models with the same layer sequence (the masked model and its
# smaller twin, say) one layer at a time, each layer on its own model's activations,
# and times layer i of both in the same interleaved rounds. Next to each layer's time
# ratio it puts the layer's FLOP ratio (Module 14's `layer_flops`), so a layer whose
# time shrinks less than its FLOPs stands out.

# %% nbgrader={"grade": false, "grade_id": "layer-times", "solution": false}
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


# %% nbgrader={"grade": true, "grade_id": "test-layer-times", "locked": true, "points": 1}
def test_unit_compare_layer_times():
    """Each row names a layer and holds its FLOPs in both models, as Module 14 counts them."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed
    from tinytorch.profiling import flops_by_layer

    manual_seed(0)
    model = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                       Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    small = remove_pruned_units(model, structured_prune(model, 0.5))
    x = Tensor(np.random.default_rng(0).standard_normal((4, 1, 8, 8)))
    rows = compare_layer_times(model, small, x, repeats=1)
    assert [r.name for r in rows] == [name for name, _ in flops_by_layer(model, x.shape)]
    assert [r.before_flops for r in rows] == [f for _, f in flops_by_layer(model, x.shape)]
    assert [r.after_flops for r in rows] == [f for _, f in flops_by_layer(small, x.shape)]
    assert all(r.before_seconds > 0 and r.after_seconds > 0 for r in rows)
    try:
        compare_layer_times(model, Sequential(*list(small)[:-1]), x)
    except ValueError as e:
        assert "8 layers" in str(e) and "7" in str(e)
    else:
        raise AssertionError("layer sequences of different lengths must raise")


# %% [markdown]
# ### 9.5 Measure it: when do zeros become speed?
#
# Four measurements, each timed in interleaved rounds (every variant once per round,
# medians over rounds), so a busy moment of the machine slows all variants alike and
# the ratios hold even when the absolute times wander:
#
# 1. forward latency of the masked model vs the smaller one across structured ratios,
#    next to the FLOP reduction (Module 14's `count_flops`), for three networks: the
#    wide MLP, the digits CNN (8 and 16 filters on 8x8 images) and a CNN of CIFAR's
#    shape (32 and 64 filters on 3x32x32 images);
# 2. the two CNNs at ratio 0.5, layer by layer (`compare_layer_times`);
# 3. one Linear layer, dense matmul vs CSR across sparsity 50-99%, at batch 1 and 64,
#    with the crossover marked;
# 4. an MLP pruned to 90% unstructured sparsity: latency without and with the sparse path.
#
# NumPy's BLAS is held to one thread where `threadpoolctl` is installed, and then the
# clock is the CPU time of this process: on one thread that is the latency an idle
# machine shows, while elapsed time on a busy machine also counts the moments other
# programs hold the CPU. `TINYTORCH_QUICK=1` shrinks the sizes for a fast smoke run;
# the numbers worth reading come from a full run. Plots go to `$TINYTORCH_PLOTS`
# (default `./compression-plots`).

# %%
import contextlib



def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    return plt


def _plain_log_y(ax, label: str, title: str) -> None:
    """A log y axis with plain numbers (0.5, 2, 10) as tick labels."""
    from matplotlib.ticker import FuncFormatter

    ax.set(yscale="log", ylabel=label, title=title)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # label the 2s and 5s between the powers of ten too
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def _wide_mlp(width: int, seed: int = 0):
    """MLP 512-width-width-10 with random weights (speed does not care about accuracy)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(512, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 10))


def _digits_cnn(seed: int = 0):
    """The digits CNN: Conv 1->8, ReLU, MaxPool, Conv 8->16, ReLU, MaxPool, Flatten, Linear(64, 10)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))


def _cifar_cnn(c1: int = 32, c2: int = 64, seed: int = 0):
    """The digits CNN's layers, wider, on 3x32x32 images: Conv 3->c1, ..., Conv c1->c2, ..., Linear(c2*64, 10)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Conv2d(3, c1, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(c1, c2, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(c2 * 64, 10))


def _speed_nets():
    """(name, builder, input shape) of the networks section 9.5 times: small in quick mode."""
    width, batch = (256, 32) if QUICK else (2048, 256)
    c1, c2, cifar_batch = (8, 16, 8) if QUICK else (32, 64, 64)
    return [(f"MLP 512-{width}-{width}-10", lambda: _wide_mlp(width), (batch, 512)),
            ("digits CNN", _digits_cnn, (batch, 1, 8, 8)),
            (f"CIFAR-shaped CNN {c1}/{c2}", lambda: _cifar_cnn(c1, c2), (cifar_batch, 3, 32, 32))]


@contextlib.contextmanager
def _one_blas_thread():
    """Hold NumPy's BLAS to one thread where threadpoolctl is installed; yields the clock to time with."""
    # NOTE: on a shared machine a multi-threaded BLAS waits for its threads far longer
    # than it computes, and the dense times would measure the machine's load.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "wall"
        return
    with threadpool_limits(1, user_api="blas"):
        yield "cpu"


def _eval_times(models, x, repeats):
    """Median seconds per forward pass of each model on x, interleaved, eval mode, no graph."""
    from tinytorch.core.autograd import no_grad

    for m in models:
        m.eval()
    with no_grad(), _one_blas_thread() as clock:
        return time_interleaved([lambda m=m: m(x) for m in models], repeats=repeats, clock=clock)


def analysis_structured_speed(ratios=(0.25, 0.5, 0.75, 0.9)):
    """Masked vs removed forward latency across structured ratios, against the FLOP reduction."""
    import copy

    from tinytorch.core.tensor import Tensor
    from tinytorch.profiling import count_flops

    repeats = 2 if QUICK else 11
    ratios = (0.5, 0.9) if QUICK else ratios
    nets = _speed_nets()
    rows = []
    for name, build, shape in nets:
        x = Tensor(np.random.default_rng(0).standard_normal(shape))
        base = build()
        for ratio in ratios:
            masked = copy.deepcopy(base)
            small = remove_pruned_units(masked, structured_prune(masked, ratio))
            t_masked, t_small = _eval_times([masked, small], x, repeats)
            flops = count_flops(masked, shape) / count_flops(small, shape)
            rows.append((name, ratio, t_masked, t_small, flops))
    print(f"{'model':<26}{'ratio':>6}{'masked ms':>11}{'removed ms':>11}{'speedup':>9}{'FLOP ratio':>11}")
    for name, ratio, tm, ts, flops in rows:
        print(f"{name:<26}{ratio:>6.2f}{1e3 * tm:>11.2f}{1e3 * ts:>11.2f}{tm / ts:>8.2f}x{flops:>10.2f}x")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, _, _ in nets:
        mine = [r for r in rows if r[0] == name]
        line, = ax.plot([r[1] for r in mine], [r[2] / r[3] for r in mine], "o-", label=f"{name}: measured speedup")
        ax.plot([r[1] for r in mine], [r[4] for r in mine], "s--", color=line.get_color(),
                label=f"{name}: FLOP reduction")
    ax.set(xlabel="structured ratio (fraction of hidden units removed)")
    _plain_log_y(ax, "x faster / x fewer FLOPs", "Removing pruned units")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(PLOTS / "structured_speedup.png", dpi=120)
    plt.close(fig)
    return rows


def analysis_layer_times(ratio=0.5):
    """Each CNN layer's speedup after removal at `ratio`, next to its FLOP ratio."""
    import copy

    from tinytorch.core.tensor import Tensor

    repeats = 2 if QUICK else 9
    tables = []
    for name, build, shape in _speed_nets()[1:]:
        masked = build()
        small = remove_pruned_units(masked, structured_prune(masked, ratio))
        masked.eval()
        small.eval()
        x = Tensor(np.random.default_rng(0).standard_normal(shape))
        with _one_blas_thread() as clock:
            rows = compare_layer_times(masked, small, x, repeats=repeats, clock=clock)
        tables.append((name, shape[0], rows))
        print(f"{name} (batch {shape[0]}) at ratio {ratio}, layer by layer; share = the layer's part of the masked time")
        print(f"{'layer':<13}{'masked us':>11}{'removed us':>11}{'share':>7}{'speedup':>9}{'FLOP ratio':>11}")
        total = sum(r.before_seconds for r in rows)
        for r in rows:
            flops = "-" if r.flop_ratio is None else f"{r.flop_ratio:.2f}x"
            print(f"{r.name + ' ' + r.kind:<13}{1e6 * r.before_seconds:>11.1f}{1e6 * r.after_seconds:>11.1f}"
                  f"{r.before_seconds / total:>7.0%}{r.speedup:>8.2f}x{flops:>11}")
        after = sum(r.after_seconds for r in rows)
        print(f"{'all layers':<13}{1e6 * total:>11.1f}{1e6 * after:>11.1f}{'':>7}{total / after:>8.2f}x")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(11, 4), sharey=True)
    for ax, (name, batch, rows) in zip(np.atleast_1d(axes), tables):
        idx = np.arange(len(rows))
        ax.bar(idx - 0.2, [r.speedup for r in rows], width=0.4, label="measured speedup")
        ax.bar(idx + 0.2, [r.flop_ratio or 0 for r in rows], width=0.4, label="FLOP ratio")
        total = sum(r.before_seconds for r in rows)
        ax.set_xticks(idx, [f"{r.kind} ({r.before_seconds / total:.0%})" for r in rows], rotation=45,
                      ha="right", fontsize=8)
        ax.set_xlabel("layer (its share of the masked model's time)", fontsize=8)
        ax.set(title=f"{name}, batch {batch}, ratio {ratio}", ylabel="x")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "structured_layer_times.png", dpi=120)
    plt.close(fig)
    return tables


def analysis_csr_crossover(sparsities=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99), batches=(1, 64)):
    """Dense vs CSR time of one Linear layer across sparsity, per batch size, with the crossover."""
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor, manual_seed

    size, repeats = (256, 2) if QUICK else (1024, 9)
    if QUICK:
        sparsities = (0.5, 0.9, 0.99)
    manual_seed(0)
    layer = Linear(size, size)
    weights = layer.weight.data.copy()
    rng = np.random.default_rng(0)
    results = {b: [] for b in batches}
    for s in sparsities:
        np.copyto(layer.weight.data, weights)
        magnitude_prune(Sequential(layer), s)
        sparse = SparseLinear.from_linear(layer)
        for b in batches:
            x = Tensor(rng.standard_normal((b, size)))
            results[b].append(tuple(_eval_times([layer, sparse], x, repeats)))
    backend = SparseLinear(np.eye(1)).backend
    print(f"Linear({size}, {size}): dense vs CSR ({backend}), ms per forward pass")
    print(f"{'sparsity':>9}" + "".join(f"{f'dense b={b}':>12}{f'CSR b={b}':>12}" for b in batches))
    for i, s in enumerate(sparsities):
        print(f"{s:>9.0%}" + "".join(f"{1e3 * results[b][i][0]:>12.3f}{1e3 * results[b][i][1]:>12.3f}"
                                     for b in batches))
    crossings = {b: crossover_sparsity(sparsities, [d for d, _ in results[b]], [c for _, c in results[b]])
                 for b in batches}
    for b, c in crossings.items():
        print(f"batch {b}: CSR is faster from " + ("-- (never, in this range)" if c is None else f"{c:.1%} sparsity"))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(batches), figsize=(10, 4), sharex=True)
    for ax, b in zip(np.atleast_1d(axes), batches):
        xs = [100 * s for s in sparsities]
        ax.plot(xs, [1e3 * d for d, _ in results[b]], "o-", label="dense matmul")
        ax.plot(xs, [1e3 * c for _, c in results[b]], "s-", label=f"CSR ({backend})")
        if crossings[b] is not None:
            ax.axvline(100 * crossings[b], color="gray", linestyle=":", label=f"crossover {crossings[b]:.0%}")
        ax.set(xlabel="sparsity (%)")
        _plain_log_y(ax, "ms per forward", f"Linear({size}, {size}), batch {b}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "csr_crossover.png", dpi=120)
    plt.close(fig)
    return results, crossings


def analysis_sparse_path(sparsity=0.9, batches=(1, 64)):
    """An MLP at 90% unstructured sparsity: latency dense, pruned (still dense), and with to_sparse."""
    import copy

    from tinytorch.core.tensor import Tensor

    width, repeats = (256, 2) if QUICK else (1024, 11)
    dense = _wide_mlp(width, seed=1)
    pruned = copy.deepcopy(dense)
    magnitude_prune(pruned, sparsity)
    rows = []
    for b in batches:
        with _one_blas_thread() as clock:
            plan = plan_sparse(pruned, min_sparsity=0.5, batch_size=b, repeats=repeats, clock=clock)
        fast = to_sparse(pruned, plan=plan)
        x = Tensor(np.random.default_rng(b).standard_normal((b, 512)))
        times = _eval_times([dense, pruned, fast], x, repeats)
        swapped = [c.name for c in plan if c.use_sparse]
        rows.append((b, *times, swapped))
    print(f"MLP 512-{width}-{width}-10 at {sparsity:.0%} unstructured sparsity, ms per forward pass")
    print(f"{'batch':>6}{'dense':>10}{'pruned':>10}{'to_sparse':>11}  CSR layers")
    for b, d, p, f, swapped in rows:
        print(f"{b:>6}{1e3 * d:>10.3f}{1e3 * p:>10.3f}{1e3 * f:>11.3f}  {', '.join(swapped) or 'none'}"
              f"  (dense / to_sparse = {d / f:.2f}x)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    idx = np.arange(len(rows))
    for k, label in enumerate(["dense", f"{sparsity:.0%} pruned, dense matmul", "with to_sparse"]):
        ax.bar(idx + (k - 1) * 0.27, [r[1 + k] / r[1] for r in rows], width=0.27, label=label)
    ax.set_xticks(idx, [f"batch {r[0]}" for r in rows])
    ax.set(ylabel="latency relative to dense", title=f"MLP 512-{width}-{width}-10, unstructured pruning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "sparse_path_latency.png", dpi=120)
    plt.close(fig)
    return rows


# %% [markdown]
# **Reading the results.** FLOPs count multiply-adds, not the bytes a layer moves nor
# the fixed cost of a call. A layer's time is set by whichever runs out first, the
# arithmetic or the memory traffic, and its *arithmetic intensity* (FLOPs per byte it
# reads and writes) says which. A core does several FLOPs, often tens, in the time
# it takes to move one byte to or from memory; a layer with fewer FLOPs per byte than
# that waits on memory, and its time follows its bytes, not its FLOPs.
#
# - `Linear(2048, 2048)` at batch 256 does 2 x 256 x 2048 x 2048 = 2.1 GFLOP on about
#   21 MB (input, output, weights): some 100 FLOPs per byte. It is limited by
#   arithmetic, and removing half the units of both layers it joins quarters its time,
#   as the MLP's line in `structured_speedup.png` shows.
# - A 3x3 convolution with C input and O output channels does 2 x 9C x O FLOPs per
#   output position, while im2col writes and the matmul reads 9C values there, and the
#   output is O values: about (2 x 9C + O) x 4 bytes. For the digits CNN's second
#   convolution (C = 8, O = 16) that is 2,304 FLOPs on 640 bytes, 3.6 per byte; halve
#   both channel counts and it is 576 on 320, 1.8 per byte. The FLOPs drop 4x, the
#   bytes only 2x, and a layer this far below the machine's balance speeds up by
#   about the byte ratio. Work out the CIFAR-shaped CNN's second convolution (C = 32,
#   O = 64) the same way and compare its row in the layer table.
# - The first convolution copies its 1- or 3-channel input nine times whatever number
#   of filters remains; ReLU and pooling do no multiply-adds at all and move memory in
#   proportion to the channels (2x at ratio 0.5); and every layer call costs some
#   microseconds of Python and NumPy bookkeeping, whatever its size.
#
# So removal follows the FLOPs where layers are wide and the work is in matmuls, and
# falls short where layers are narrow. `benchmarks/bench_structured.py` runs the same
# smaller models in PyTorch as well, for comparison. Questions: which rows of your layer
# table fall furthest below their FLOP ratio, and which of the reasons above explains
# each? From how many channels on would you expect the digits CNN's second convolution
# to follow its FLOPs?
#
# For CSR, each stored weight costs an index read and an irregular access to the
# input, so it pays only when most weights are gone; where exactly depends on the batch
# size (a dense product reuses every weight for all rows of the batch, scipy's kernel
# also walks the batch for each stored weight) and on the machine. That is why
# `to_sparse` times both forms at your batch size before it swaps anything. Questions:
# which batch size has the lower crossover here, and why? At 90% unstructured sparsity,
# is the pruned model (dense matmul) any faster than the unpruned one?

# %%
if __name__ == "__main__":
    _start = _time.perf_counter()
    analysis_structured_speed()
    analysis_layer_times()
    analysis_csr_crossover()
    analysis_sparse_path()
    print(f"section 9 analyses took {_time.perf_counter() - _start:.1f} s; plots in {PLOTS}/")


# %% [markdown]
# ## 10. The page's questions, measured
#
# The course page asks three questions. Section 9 measured the second, *when is sparse
# computation faster than dense*. This section measures the other two on the digits
# MLP, and a third design question behind them:
#
# 1. **Why can a pruned network retrain to full accuracy?** The lottery-ticket
#    hypothesis says the pruned network's survivors, rewound to their initial values,
#    were a trainable network all along. Its control is the same mask with new weights.
# 2. **Distillation or pruning, and can they be combined?** DistilBERT is a smaller
#    network trained to imitate a larger one; pruning shrinks the large one itself.
# 3. **Which layers should lose how much?** Section 3's sensitivity curves, turned into
#    a per-layer allocation, against uniform and global pruning at the same sparsity.
#
# The experiment code is given (`questions_given.py`, exported to
# `tinytorch.compression.experiments`); what you read here is its result on your run.

# %%
from tinytorch.compression import experiments as qx

SEEDS = (0,) if QUICK else (0, 1, 2)
EPOCHS = 3 if QUICK else 25

# %% [markdown]
# ### 10.1 Lottery tickets
#
# Train the network, prune it by magnitude, and keep its mask. Then train four networks
# with that mask, each for the same 25 epochs: the **ticket** (survivors rewound to
# their values at initialisation with `IterativePruner(rewind_to=initial_state)`), the
# **late ticket** (rewound to their values after one epoch), **random** (the same mask
# on freshly drawn weights), and the trained network **fine-tuned**. If the ticket
# beats random, the initial values mattered, not only the wiring.

# %%
if __name__ == "__main__":
    lottery = qx.lottery_tickets((0.9,) if QUICK else (0.5, 0.8, 0.9, 0.95, 0.98), SEEDS, EPOCHS)
    arms = ("ticket", "late", "random", "finetuned")
    table = qx.summarize(lottery, ["sparsity"], ["dense", *arms])
    print(f"test accuracy (%) after {EPOCHS} epochs with the mask of the trained, pruned network")
    print(qx.table(table, ["sparsity"], ["dense", *arms], percent=["dense", *arms]))
    qx.plot_lines(table, "sparsity", arms, PLOTS / "lottery_tickets.png", "Digits MLP: lottery tickets")

# %% [markdown]
# **Reading the results.** Our run (3 seeds; each accuracy is a mean, ± its spread):
#
# - Up to 80% the ticket and the fine-tuned network stay within half a point of the
#   dense network; the random control falls 1-2 points behind at 80%.
# - From 90% on the gap widens: at 95% the ticket reaches about 92.7% and the same mask
#   on fresh weights about 89%, a gap of several spreads. The wiring alone is not the
#   whole ticket; the initial values that came with it matter: the lottery-ticket
#   effect, measured on this network.
# - At 95% the rewound ticket, retrained at the training rate (3e-3), even beats the
#   trained network fine-tuned at the usual lower rate (1e-3; about 90%).
# - Rewinding to epoch 1 instead of 0 ("late" rewinding) moves the numbers by less than
#   their spread: on a network this small, rewinding to initialisation already works
#   (Frankle et al. needed late rewinding for deep networks).
# - At 98% (340 weights) one-shot pruning breaks every variant, with a spread of up to
#   10 points: there is no ticket left to find at one shot; section 8's iterative
#   schedule is the way there.
#
# Questions: does the ticket's advantage over random grow or shrink with sparsity in
# your run? Why must the random control keep the same mask rather than draw a new one?

# %% [markdown]
# ### 10.2 Distillation
#
# A trained teacher's logits say more than the label: that a 3 looks a little like an 8.
# Hinton et al. (2015) soften both networks' softmax with a temperature T and train the
# student to match the teacher's distribution, mixed with the ordinary loss:
#
# $$L = \alpha\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(t/T) \,\|\, \mathrm{softmax}(s/T)\big) + (1-\alpha)\, \mathrm{CE}(s, y)$$
#
# with the KL divergence averaged over the batch. Its gradient with respect to the
# student's logits s is T (q - p) / N, where p and q are the softened teacher and
# student distributions; the T^2 factor keeps that from shrinking as T grows, so alpha
# means the same at any temperature.

# %%
#| export compression.distill
import numpy as np

from tinytorch.core.losses import CrossEntropyLoss, log_softmax
from tinytorch.core.tensor import Tensor

# %% nbgrader={"grade": false, "grade_id": "distillation-loss", "solution": true}
#| export compression.distill
def distillation_loss(student_logits: Tensor, teacher_logits, targets, temperature: float = 4.0,
                      alpha: float = 0.9) -> Tensor:
    """alpha T^2 KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) CE(student, targets). Task 16.20

    Args:
        student_logits: (N, C) Tensor; the loss is differentiable in it.
        teacher_logits: (N, C) Tensor or array, a constant (no gradient flows to it).
        targets: (N,) class indices, as for `CrossEntropyLoss`.
        temperature: T > 0; alpha: the weight of the soft term, in [0, 1].

    Raises:
        TypeError: `student_logits` is not a Tensor.
        ValueError: shapes differ, or `temperature`/`alpha` out of range.
    """
    if not isinstance(student_logits, Tensor):
        raise TypeError(f"student_logits must be a Tensor, got {type(student_logits).__name__}")
    teacher = np.asarray(teacher_logits.data if isinstance(teacher_logits, Tensor) else teacher_logits, np.float64)
    if teacher.shape != student_logits.shape or teacher.ndim != 2:
        raise ValueError(f"teacher_logits must have the student's shape (N, C) {student_logits.shape}, "
                         f"got {teacher.shape}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < np.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    hard = CrossEntropyLoss()(student_logits, targets)
    ### BEGIN SOLUTION
    t, n = float(temperature), len(teacher)
    log_p = log_softmax(teacher / t, axis=1)
    log_q = log_softmax(student_logits.data.astype(np.float64) / t, axis=1)
    p = np.exp(log_p)
    kl = float((p * (log_p - log_q)).sum()) / n

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        return (grad * t * (np.exp(log_q) - p) / n,)  # T^2 * (q - p) / (T N)

    soft = Tensor.from_op(np.asarray(t * t * kl), (student_logits,), backward, op="distillation_kl")
    return soft * alpha + hard * (1.0 - alpha)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-distillation-loss", "locked": true, "points": 3}
def test_unit_distillation_loss():
    """Task 16.20: value against the formula in NumPy, gradient against finite differences."""
    rng = np.random.default_rng(0)
    s, t, y = rng.standard_normal((5, 4)) * 2, rng.standard_normal((5, 4)) * 2, rng.integers(0, 4, 5)

    def reference(z, T=3.0, a=0.7):  # float64 NumPy, written from the formula
        p, log_q = np.exp(log_softmax(t / T, axis=1)), log_softmax(z / T, axis=1)
        kl = (p * (np.log(p) - log_q)).sum(axis=1).mean()
        return a * T * T * kl + (1 - a) * -log_softmax(z, axis=1)[np.arange(5), y].mean()

    x = Tensor(s, requires_grad=True)
    loss = distillation_loss(x, t, y, temperature=3.0, alpha=0.7)
    assert abs(loss.item() - reference(s)) < 1e-5, (loss.item(), reference(s))
    loss.backward()
    eps, numeric = 1e-6, np.zeros_like(s)
    for i in np.ndindex(s.shape):
        up, down = s.copy(), s.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (reference(up) - reference(down)) / (2 * eps)
    assert np.allclose(x.grad, numeric, atol=1e-5), np.abs(x.grad - numeric).max()
    same = distillation_loss(Tensor(s), s, y, alpha=1.0).item()  # identical logits: no divergence
    assert abs(same) < 1e-6, same


# %% [markdown]
# `distill(student, teacher, optimizer, loader, epochs)` (given) is Module 07's loop
# with this loss; the teacher runs in eval mode without gradients and is left as it
# was. The experiment compares four networks with the same number of non-zero weights:
# a small dense student trained from scratch, the same student distilled from the
# trained 64-128-64-10 teacher, the teacher pruned to the student's count and
# fine-tuned, and that pruned network fine-tuned with the distillation loss. It runs in
# two regimes: all 1,437 training labels, and only 100 of them (the teacher saw all).

# %%
if __name__ == "__main__":
    for labels in (None, 100):
        kd = qx.distill_vs_prune((64, 16, 10), SEEDS, 4 if QUICK else 40, labels=labels, timing=labels is None)
        print(f"student 64-16-10 and teacher 64-128-64-10 pruned to its weights; {labels or 'all'} labels")
        print(qx.table(qx.summarize(kd, ["arm"], ["accuracy", "nonzero", "bytes", "us"]), ["arm"],
                       ["accuracy", "nonzero", "bytes", "us"], percent=["accuracy"]))

# %% [markdown]
# **Reading the results.** Our run, student 64-16-10 (1,184 weights) and the teacher
# pruned to the same 1,184:
#
# - **With all labels, distillation does not help here.** The distilled student
#   (94.3 ± 0.6%) is no better than the same student trained on the labels (95.1 ±
#   0.6%), and fine-tuning the pruned teacher with the distillation loss (94.6%)
#   differs from fine-tuning it with the labels (94.4%) by less than the spread. A 96%
#   teacher on 1,437 clean labelled images has little to add that the labels do not
#   already say.
# - **With 100 labels, it decides everything.** Trained on its 100 labels the student
#   reaches about 70% (± 9); distilled on all 1,437 images without their labels, the
#   teacher's outputs being its only signal, about 94%. The pruned teacher likewise:
#   about 66% fine-tuned on 100 labels, 95% fine-tuned by distillation. Distillation
#   pays when the teacher can label data the student has no labels for. That is
#   DistilBERT's setting: a large unlabelled corpus and a teacher to read it.
# - **Same weights, different costs.** At 1,184 weights the dense student's file is
#   about 1.4 KB and the pruned teacher's about 2.4 KB (positions of the survivors, and
#   202 biases against 26); and the dense student runs a 64x16 matmul while the pruned
#   teacher still multiplies all its zeros (see the latency column): a smaller dense
#   network is both smaller on disk and faster.
#
# So: prune when you must keep the architecture (or its accuracy at moderate
# sparsity); distill when you need a small dense network and have inputs the teacher can
# label; combine them when labels are scarce. Question: why does alpha = 1 make sense in
# the second regime but not in the first?

# %% [markdown]
# ### 10.3 Design: which layers lose how much
#
# A sensitivity scan (section 3) prunes one layer at a time and measures what that
# costs. Layers differ: the last layer, 640 weights that decide among ten classes, is
# far more fragile than the first. *Uniform* pruning gives every layer the same
# sparsity; *global* magnitude pruning lets the magnitudes decide; a *sensitivity*
# allocation reads the curves.
#
# Your rule: give each layer the largest sparsity at which its accuracy drop (its
# curve, made non-decreasing and interpolated linearly between the scanned points, with
# drop 0 at sparsity 0) stays within a common tolerance d, and choose d by bisection so
# that the weighted mean sparsity, sum(n_l s_l) / sum(n_l), equals `overall`.

# %% nbgrader={"grade": false, "grade_id": "allocate-sparsity", "solution": true}
#| export compression.allocation
import numpy as np


def allocate_sparsity(scan, sizes: dict[str, int], overall: float) -> dict[str, float]:
    """Per-layer sparsities at one common accuracy drop, averaging `overall` over the weights. Task 16.21

    Args:
        scan: a `SensitivityScan` (rows of layer, sparsity, score, and its baseline).
        sizes: `{layer name: number of weights}` for every layer of the scan.
        overall: the target sparsity of all those weights, in [0, max scanned sparsity].

    Raises:
        ValueError: `overall` cannot be reached with the scanned sparsities, or a layer
            of `sizes` is not in the scan.
    """
    curves = {name: sorted((s, scan.baseline - score) for layer, s, score in scan if layer == name) for name in sizes}
    if any(not c for c in curves.values()):
        raise ValueError(f"every layer of sizes must be in the scan; missing {[n for n, c in curves.items() if not c]}")
    top = sum(n * curves[name][-1][0] for name, n in sizes.items()) / sum(sizes.values())
    if not 0.0 <= overall <= top:
        raise ValueError(f"overall must be in [0, {top:.4f}] (the scanned sparsities), got {overall!r}")
    ### BEGIN SOLUTION
    def at(d: float) -> dict[str, float]:
        out = {}
        for name, curve in curves.items():
            s = np.array([0.0] + [p[0] for p in curve])
            drop = np.maximum.accumulate(np.array([0.0] + [p[1] for p in curve]))
            drop = drop + 1e-12 * np.arange(len(drop))  # strictly rising, for interp
            out[name] = float(np.interp(d, drop, s))
        return out

    lo, hi = -1.0, 1.0 + max(c[-1][1] for c in curves.values())
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = sum(sizes[n] * s for n, s in at(mid).items()) / sum(sizes.values())
        lo, hi = (mid, hi) if mean < overall else (lo, mid)
    return at(hi)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-allocate-sparsity", "locked": true, "points": 3}
def test_unit_allocate_sparsity():
    """Task 16.21: the overall sparsity is met, and the fragile layer keeps more weights."""
    from tinytorch.compression.prune import SensitivityScan

    rows = [("a", 0.5, 0.95), ("a", 0.9, 0.9), ("b", 0.5, 0.7), ("b", 0.9, 0.2)]
    scan = SensitivityScan(rows, baseline=0.96)
    got = allocate_sparsity(scan, {"a": 900, "b": 100}, 0.8)
    assert abs((900 * got["a"] + 100 * got["b"]) / 1000 - 0.8) < 1e-6, got
    assert got["a"] > 0.8 > got["b"], got
    drop_a = np.interp(got["a"], [0, 0.5, 0.9], [0, 0.01, 0.06])
    drop_b = np.interp(got["b"], [0, 0.5, 0.9], [0, 0.26, 0.76])
    assert abs(drop_a - drop_b) < 1e-6, (drop_a, drop_b)  # one common tolerance


# %% [markdown]
# The comparison: for each overall sparsity, the trained network is pruned three ways
# in three rounds with fine-tuning after each (the same budget for all), then stored as
# a sparse INT8 file. The design target: **a file of at most 2,000 bytes
# (`qx.DESIGN_BYTES`, 95% sparsity), on average at most one point below the dense
# network** (`tests/16_compression/test_questions.py` checks your `allocate_sparsity`
# against it over three seeds).

# %%
if __name__ == "__main__":
    compared, scans = qx.allocations_compared(allocate_sparsity, (0.95,) if QUICK else (0.9, 0.93, 0.95, 0.97),
                                              SEEDS, epochs=1 if QUICK else 5, final=1 if QUICK else 10)
    print(scans[SEEDS[0]])
    qx.plot_sensitivity(scans[SEEDS[0]], PLOTS / "layer_sensitivity.png")
    print(f"target: a file of at most {qx.DESIGN_BYTES:,} bytes, at most {100 * qx.DESIGN_DROP:.0f} point(s) lost on average")
    print(qx.table(qx.summarize(compared, ["overall", "rule"], ["drop", "bytes"]), ["overall", "rule"],
                   ["drop", "bytes"], percent=["drop"]))

# %% [markdown]
# **Reading the results.** Our run (3 seeds; drop in points of accuracy):
#
# - The scan: the last layer is the fragile one (at 95% alone it falls to 38%), the
#   middle layer the robust one (89%); the first layer falls hard without fine-tuning
#   (56%) but recovers with it. Your rule therefore prunes the middle layer hardest and
#   spares the last.
# - Up to 93% the three rules lose under a point each and differ by less than their
#   spreads: on this small network with fine-tuning, any sensible allocation works.
# - At 95% they part: uniform pruning leaves the 640-weight last layer 32 weights for
#   ten classes and loses about 2 points; global pruning loses about 1.2 and writes a
#   larger file (about 2,060 bytes); the sensitivity allocation loses about 0.7 points
#   in about 1,870 bytes, the only one inside the target. At 97% every rule loses about
#   3 points or more.
# - Note the bytes: at the same number of non-zero weights the files differ by 15%.
#   The file stores each layer's positions in whichever encoding is smallest for that
#   layer, and a layer's density decides which (section 7): the allocation sets the
#   bytes of the positions, not only the number of values.
#
# Questions: which layer does your allocation prune hardest at 95%, and why does the
# one-layer-at-a-time scan overstate the first layer's fragility?

# %% [markdown]
# ### 10.4 Going further: low rank
#
# The third way to shrink a Linear: `low_rank(layer, rank=r)` (given) splits it into
# two thinner ones from its truncated SVD, r (in + out) weights instead of in x out,
# and dense, so every weight it removes is time saved on any hardware. Below, the two
# hidden layers are split at the rank that keeps a fraction of their weights, and the
# same number of weights is kept by magnitude pruning and by removing whole units.

# %%
if __name__ == "__main__":
    lowrank = qx.low_rank_vs_pruning((0.25,) if QUICK else (0.5, 0.25, 0.1), SEEDS, 2 if QUICK else 10)
    values = ["before", "accuracy", "weights", "bytes", "us"]
    print(qx.table(qx.summarize(lowrank, ["fraction", "arm"], values), ["fraction", "arm"], values,
                   percent=["before", "accuracy"]))

# %% [markdown]
# **Reading the results.** Our run: keeping 50% or 25% of the hidden weights, the SVD
# split loses almost nothing even before fine-tuning (96.3% and 95.7%, against 94.4%
# and 89% for magnitude pruning): it is the best rank-r matrix. After ten epochs of
# fine-tuning the three meet there; at 10% the split falls behind (about 90%, against
# 95.7% for magnitude pruning and 93.2% for removed units). The split and the
# structured network are dense, so their files carry no positions and their matmuls
# shrink: both are smaller on disk and faster than the magnitude-pruned network, which
# multiplies its zeros. Question: at what rank does the split of Linear(128, 64) stop
# saving weights?
#
# **The page's questions, answered by your run.**
#
# 1. *Why can pruned networks retrain to full accuracy?* Because the survivors, with
#    their initial values, still form a trainable network: section 10.1's tickets
#    retrain to within a point of dense up to 90% and beat the same mask on fresh
#    weights from 90% on; one-shot pruning at 98% leaves no ticket to find.
# 2. *When is sparse computation faster than dense?* Section 9: when whole units go
#    (structured pruning, then `remove_pruned_units`), or, for scattered zeros, only
#    past the CSR crossover measured there; a dense matmul multiplies zeros.
# 3. *Distillation or pruning?* Section 10.2: with all labels neither beats a small
#    dense network trained on them, and the small dense network is the smaller, faster
#    file; with few labels and unlabelled inputs, distillation (alone or after pruning)
#    recovers most of the teacher's accuracy. Section 10.3 adds the design rule: spend
#    the sparsity where the sensitivity curves say it is cheap.

# %%
if __name__ == "__main__":
    test_unit_distillation_loss()
    test_unit_allocate_sparsity()


# %%
def test_module():
    """Run every inline test of Module 16."""
    test_unit_measure_sparsity()
    test_unit_smallest_k_masks()
    test_unit_magnitude_prune()
    test_unit_masks_apply()
    test_unit_sensitivity_scan()
    test_unit_structured_prune()
    test_unit_drop_dead_units()
    test_unit_masks_survive_optimizer()
    test_unit_sparsity_schedule()
    test_unit_iterative_pruner()
    test_unit_storage_round_trip()
    test_unit_plan_cut()
    test_unit_remove_pruned_units()
    test_unit_fine_tune_after_removal()
    test_unit_to_csr()
    test_unit_csr_matmul()
    test_unit_sparse_linear()
    test_unit_to_sparse()
    test_unit_compare_layer_times()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 16: all inline tests passed")
