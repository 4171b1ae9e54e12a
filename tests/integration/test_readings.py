"""Every lesson whose text quotes its own measurements (a "Reading the results" cell, or an
ABOUT.md section "What the lesson measures") has full runs recorded under the OpenBLAS
kernels (`modules/NN_name/runs/`), and every figure it quotes is printed by those runs, under
every kernel (a figure that moves with the kernel is written as a range)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tito.project import all_modules, read_source
from tito.readings import check, measured_section, readings

ROOT = Path(__file__).resolve().parents[2]
MODULES = all_modules(ROOT)


def quotes_measurements(module) -> bool:
    about = module.dev_file.parent / "ABOUT.md"
    return bool(readings(read_source(module.dev_file, ROOT))
                or (about.exists() and measured_section(about.read_text(encoding="utf-8")).strip()))


QUOTING = [m for m in MODULES if quotes_measurements(m)]


def test_the_lessons_that_quote_measurements_are_known():
    assert [m.number for m in QUOTING] == ["15", "16", "18", "19", "20"]


@pytest.mark.parametrize("module", QUOTING, ids=[m.dirname for m in QUOTING])
def test_every_quoted_figure_is_printed_by_the_runs_recorded_under_three_kernels(module):
    runs = module.dev_file.parent / "runs"
    assert sorted(p.stem for p in runs.glob("*.json")) == ["Haswell", "Prescott", "SkylakeX"], runs
    problems, checked = check(module)
    assert checked >= 20, f"only {checked} figures found in {module.dirname}'s readings"
    assert not problems, "\n".join(problems)


def test_recordings_name_no_folder_of_the_machine_they_were_made_on():
    import re

    for path in sorted(ROOT.glob("modules/*/runs/*.json")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?<![\w<.])/(tmp|home|root|work|var)/", text), path
