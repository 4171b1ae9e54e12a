"""Shared pytest set-up: the `task` marker filter and the hypothesis profile."""
from __future__ import annotations

import os

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings

    # NOTE: CI machines are shared and noisy; a per-example deadline would make
    # property tests flaky without catching anything real.
    settings.register_profile(
        "tinytorch", deadline=None, max_examples=40,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tinytorch"))
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    pass


def pytest_addoption(parser):
    parser.addoption("--task", action="store", default=None,
                     help="run only the tests marked @pytest.mark.task('<id>'), e.g. 16.3")


def pytest_collection_modifyitems(config, items):
    task = config.getoption("--task")
    if not task:
        return
    keep, drop = [], []
    for item in items:
        ids = {str(a) for m in item.iter_markers("task") for a in m.args}
        (keep if task in ids else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture
def rng():
    """A seeded generator, so a failing example can be replayed."""
    return np.random.default_rng(0)
