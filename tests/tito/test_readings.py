"""`tito readings`: the figures of a lesson's readings against its recorded full runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tito.project import ModuleInfo, TitoError
from tito.readings import check, figures, readings, run_cells

LESSON = '''\
# %%
import numpy as np

# %%
if __name__ == "__main__":
    print(f"accuracy {ACCURACY:.4f}, file 4,107 bytes, ratio 16.6x")

# %% [markdown]
# **Reading the results.** The file takes 4,107 bytes, 16.6x less, at 96.4% (3 seeds,
# `Linear(128, 64)` is code). FIGURE

# %%
if __name__ == "__main__":
    print("speedup 1.82x")

# %% [markdown]
# **Reading the results.** Removing units gives 1.82x.
'''


def lesson(tmp_path: Path, figure: str = "", runs: dict[str, float] | None = None) -> ModuleInfo:
    """A two-reading lesson in a project folder, with a recorded run per kernel (accuracy printed)."""
    folder = tmp_path / "modules" / "90_toy"
    folder.mkdir(parents=True)
    (folder / "toy_dev.py").write_text(LESSON.replace("FIGURE", figure), encoding="utf-8")
    (folder / "runs").mkdir()
    for kernel, accuracy in (runs or {"Haswell": 0.9639, "Prescott": 0.9641}).items():
        text = LESSON.replace("{ACCURACY:.4f}", f"{accuracy:.4f}")
        cells = run_cells_of(text)
        (folder / "runs" / f"{kernel}.json").write_text(json.dumps({"kernel": kernel, "cells": cells}))
    return ModuleInfo("90", "toy", tmp_path)


def run_cells_of(text: str) -> list[dict]:
    """What `run_cells` records, for a lesson whose prints are known."""
    cells, line = [], 0
    for number, row in enumerate(text.splitlines(), start=1):
        if row.startswith("# %%") and "[markdown]" not in row:
            line = number
            cells.append({"line": line, "output": ""})
        elif row.strip().startswith("print(f\"accuracy") or row.strip().startswith('print("speedup'):
            body = row.strip()[len('print(f"'):-2] if "accuracy" in row else "speedup 1.82x"
            cells[-1]["output"] += body + "\n"
    return cells


def test_figures_are_numbers_with_a_unit_a_decimal_a_comma_or_of_100_and_more():
    text = "At 95% it keeps 96.1-96.4% in 4,107 bytes (16.6x), 3 seeds, 211 weights, `Linear(128, 64)`, 64-128-64-10"
    assert [f.text for f in figures(text, 1)] == ["95%", "96.1-96.4%", "4,107", "16.6x", "211"]
    ranged = figures("25-40x", 1)[0]
    assert ranged.values == (25.0, 40.0) and ranged.decimals == 0


def test_each_reading_reads_the_code_cells_since_the_one_before(tmp_path):
    module = lesson(tmp_path)
    found = readings(module.dev_file.read_text())
    assert [cells for _, _, cells in found] == [[0, 1], [2]]


def test_readings_printed_under_every_kernel_pass(tmp_path):
    problems, checked = check(lesson(tmp_path))
    assert problems == [] and checked == 4, problems  # 4,107, 16.6x, 96.4%; 1.82x


def test_a_wrong_figure_fails(tmp_path):
    problems, _ = check(lesson(tmp_path, figure="It keeps 97.4% of its accuracy."))
    assert len(problems) == 1 and "'97.4%' is not printed under Haswell, Prescott" in problems[0], problems


def test_a_figure_that_moves_with_the_kernel_must_be_a_range(tmp_path):
    runs = {"Haswell": 0.9639, "Prescott": 0.9611}
    problems, _ = check(lesson(tmp_path, runs=runs))
    assert len(problems) == 1 and "'96.4%' is not printed under Prescott" in problems[0], problems
    problems, _ = check(lesson(tmp_path / "ranged", figure="Across kernels: 96.1-96.4%.", runs=runs))
    assert "'96.4%'" in problems[0] and len(problems) == 1  # the single figure above still fails
    problems, _ = check(lesson(tmp_path / "wide", figure="Across kernels: 95.0-96.4%.", runs=runs))
    assert any("95 is printed under no kernel" in p for p in problems), problems


def test_a_figure_of_another_reading_does_not_count(tmp_path):
    module = lesson(tmp_path)
    text = module.dev_file.read_text().replace("gives 1.82x.", "gives 1.82x and saves 4,107 bytes.")
    module.dev_file.write_text(text)
    problems, _ = check(module)
    assert len(problems) == 1 and "'4,107' is not printed" in problems[0], problems


def test_no_recorded_run_is_a_clear_error(tmp_path):
    module = lesson(tmp_path)
    for path in (module.dev_file.parent / "runs").iterdir():
        path.unlink()
    with pytest.raises(TitoError, match="tito readings 90 --record"):
        check(module)


def test_run_cells_keeps_each_code_cells_output(tmp_path):
    path = tmp_path / "lesson.py"
    path.write_text("# %%\nx = 2\n\n# %% [markdown]\n# text\n\n# %%\nif __name__ == '__main__':\n    print(x * 21)\n")
    assert run_cells(path) == [{"line": 1, "output": ""}, {"line": 7, "output": "42\n"}]


def test_about_figures_are_checked_against_the_whole_run(tmp_path):
    module = lesson(tmp_path)
    about = module.dev_file.parent / "ABOUT.md"
    about.write_text("# Toy\n\nTakes 45 minutes, 1,000 lines.\n\n## What the lesson measures\n\n"
                     "| file | speedup |\n|---|---|\n| 4,107 B | 1.82x |\n\n## Questions\n\n2,000 words.\n")
    assert check(module) == ([], 4 + 2)  # outside the measured section nothing is read
    about.write_text(about.read_text().replace("1.82x", "1.9x"))
    problems, _ = check(module)
    assert problems == ["modules/90_toy/ABOUT.md line 9: '1.9x' is not printed under Haswell, Prescott"], problems


def test_a_recording_with_another_number_of_code_cells_must_be_made_again(tmp_path):
    module = lesson(tmp_path)
    module.dev_file.write_text(module.dev_file.read_text() + "\n# %%\nx = 1\n")
    with pytest.raises(TitoError, match="has 3 code cells, the lesson 4: record it again"):
        check(module)


def test_a_figure_naming_its_kernel_is_checked_under_that_kernel_only(tmp_path):
    runs = {"Haswell": 0.9639, "Prescott": 0.9611}
    module = lesson(tmp_path, figure="Under one kernel: 96.1% (Prescott), 96.4% under Haswell.", runs=runs)
    problems, _ = check(module)
    assert problems == ["modules/90_toy/toy_dev.py line 9: '96.4%' is not printed under Prescott"], problems
    module = lesson(tmp_path / "wrong", figure="Under one kernel: 96.4% (Prescott).", runs=runs)
    problems, _ = check(module)
    assert any("'96.4%' is not printed under Prescott" in p and "line 10" in p for p in problems), problems
