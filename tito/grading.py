"""`tito grade`: the points of a lesson's graded test cells (nbgrader's metadata)."""
from __future__ import annotations

import ast
from dataclasses import dataclass

from tito.inline import InlineResult, InlineRun, _task_key, run_inline_tests, tasks_of
from tito.project import ModuleInfo, TitoError, read_source
from tito.stubs import find_test_functions, split_cells


@dataclass
class GradedCell:
    """One nbgrader test cell: its id, points, tests and outcome."""

    grade_id: str
    line: int
    points: float
    tests: list[str]
    tasks: list[str]
    passed: bool = False
    message: str = ""


def graded_cells(module: ModuleInfo, text: str | None = None) -> list[GradedCell]:
    """The cells marked `nbgrader={"grade": true, ..., "points": N}`, with the tests each defines."""
    text = read_source(module.dev_file, module.root) if text is None else text
    functions = find_test_functions(text)
    cells = []
    for cell in split_cells(text):
        meta = cell.nbgrader
        if cell.kind != "code" or not meta.get("grade"):
            continue
        names = [n for n, fn in functions.items() if cell.start <= fn.lineno <= cell.end]
        tasks = sorted({t for n in names for t in tasks_of(n, ast.get_docstring(functions[n]), module.number)},
                       key=_task_key)
        try:
            points = float(meta.get("points", 0))
        except (TypeError, ValueError):
            raise TitoError(f"{module.dev_file.relative_to(module.root)}:{cell.start}: points must be a "
                            f"number, got {meta.get('points')!r}") from None
        cells.append(GradedCell(str(meta.get("grade_id", f"line-{cell.start}")), cell.start, points, names, tasks))
    return cells


def grade(module: ModuleInfo, env: dict[str, str] | None = None, pytest_suite: bool = True) -> list[GradedCell]:
    """Run every graded cell's tests; a cell earns its points when all of them pass, and, with
    `pytest_suite`, when none of its tasks' pytest tests (`tests/NN_name/`) fails either:
    `tito grade` and `tito test` then agree."""
    cells = graded_cells(module)
    names = [n for c in cells for n in c.tests]
    run = run_inline_tests(module, names, env=env) if cells else InlineRun()
    by_name = {r.name: r for r in run.results}
    for cell in cells:
        failed = [by_name[n] for n in cell.tests if not by_name[n].passed]
        if cell.line in run.cell_errors:  # a cell of bare asserts runs while the file loads
            failed.append(InlineResult(cell.grade_id, cell.tasks, False, run.cell_errors[cell.line]))
        cell.passed = not failed
        cell.message = failed[0].message if failed else ""
    if pytest_suite and module.tests_dir.is_dir() and any(c.passed and c.tasks for c in cells):
        _withhold_failing_tasks(module, cells)
    return cells


def _withhold_failing_tasks(module: ModuleInfo, cells: list[GradedCell]) -> None:
    """Run the module's pytest suite; a cell whose task has a failing pytest test loses its points."""
    from tito.testing import pytest_report

    proc, report = pytest_report(module.root, [str(module.tests_dir), "-q", "--tb=no"])
    tasks = report.get("tasks")
    for cell in cells:
        if not (cell.passed and cell.tasks):
            continue
        if tasks is None:
            cell.passed = False
            cell.message = (f"the pytest suite {module.tests_dir.relative_to(module.root)} did not finish "
                            f"(exit code {proc.returncode}); run 'tito test {module.number}' to see why")
            continue
        for task in cell.tasks:
            failed = tasks.get(task, {}).get("failed", [])
            if failed:
                shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
                cell.passed = False
                cell.message = (f"Task {task}: {len(failed)} pytest test(s) fail ({shown}); "
                                f"run 'tito test {module.number} --task {task}'")
                break
