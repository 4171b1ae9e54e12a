"""Every lesson with recorded full runs (`modules/NN_name/runs/`): each figure of its readings
and of its ABOUT.md's measured section is printed by those runs, under every OpenBLAS kernel
they were recorded with (a figure that moves with the kernel is written as a range)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tito.project import all_modules
from tito.readings import check

ROOT = Path(__file__).resolve().parents[2]
RECORDED = [m for m in all_modules(ROOT) if (m.dev_file.parent / "runs").is_dir()]


def test_module_16_has_recorded_runs_under_three_kernels():
    runs = ROOT / "modules" / "16_compression" / "runs"
    assert sorted(p.stem for p in runs.glob("*.json")) == ["Haswell", "Prescott", "SkylakeX"]


@pytest.mark.parametrize("module", RECORDED, ids=[m.dirname for m in RECORDED])
def test_every_reading_figure_is_printed_by_the_recorded_runs(module):
    problems, checked = check(module)
    assert checked > 50, f"only {checked} figures found in {module.dirname}'s readings"
    assert not problems, "\n".join(problems)
