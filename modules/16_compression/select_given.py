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
# # Module 16, given code: the k-th smallest magnitude in O(n)
#
# No task here. `magnitude_prune` needs the k-th smallest |w| over all prunable
# weights. `np.partition` finds it in O(n), but it needs all n magnitudes in one
# buffer, a full copy of the weights. The function below brackets the answer from a
# random sample first and partitions only the few magnitudes inside the bracket:
#
# 1. sort a sample of 65,536 magnitudes; the threshold's rank k/n in the sample, plus
#    and minus five standard errors, brackets the threshold between `lo` and `hi`;
# 2. one pass over the arrays counts the entries below `lo` and gathers the few inside
#    `[lo, hi]` (about 1% of n);
# 3. partitioning that small set gives the exact k-th smallest |w|. If the bracket
#    missed (it almost never does), partition all magnitudes instead: the sample
#    changes the speed, never the answer.
#
# On 16.8M weights this takes about 0.1 s (`benchmarks/bench_prune.py`).

# %%
#| default_exp compression.select

# %%
#| export
"""The k-th smallest magnitude over many arrays in O(n), from a sample that brackets it (given code)."""
import math
from collections.abc import Sequence

import numpy as np


def kth_smallest_magnitude(arrays: Sequence[np.ndarray], k: int, sample: int = 65536) -> float:
    """The k-th smallest |x| (1-based) over all `arrays`, in O(n) time and small extra memory.

    A random sample brackets the answer between two values; one pass counts the entries
    below the bracket and gathers those inside it (about 1% of n), and an in-place
    partition of that small set gives the exact answer. If the bracket misses (rare),
    fall back to partitioning a copy of all magnitudes. The sample only affects speed,
    never the result.
    """
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
