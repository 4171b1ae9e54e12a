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
# # Module 16, given code: reports you can print
#
# No task here. The rows of a sparsity report and of a sensitivity scan, and their
# tables (`tinytorch/compression/reports.py`). `sparsity_report` and `sensitivity_scan`
# in the lesson fill them.

# %%
#| default_exp compression.reports

# %%
#| export
"""The sparsity report and the sensitivity scan's table, with the allocation it suggests (given code)."""
from dataclasses import dataclass


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
            lines.append(f"{layer or '(model)':<9}" + "".join(f"{scores[(layer, s)]:>9.4f}" for s in sparsities))
        return "\n".join(lines)
