"""`tito tasks`: a lesson's size and its tasks, the figures a teacher budgets a module by.

For each task: the lines a student writes (non-blank lines between the solution markers),
the points of the graded cells whose tests cover it, and the pytest tests marked with it.
For the lesson: its lines, the share that is prose (markdown cells), and its given code.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass

from tito import grading, stubs
from tito.project import ModuleInfo, find_root, resolve_module

# The budget a task is written to (see STYLE.md): about 25 lines of solution.
TASK_LINES = 25


@dataclass
class TaskRow:
    """One task of a lesson."""

    task: str
    where: str
    solution_lines: int
    points: float
    pytest_tests: int


@dataclass
class LessonSize:
    """The size of one lesson and of the given code beside it."""

    lines: int
    prose_lines: int
    given_lines: dict[str, int]

    @property
    def prose_share(self) -> float:
        return self.prose_lines / self.lines if self.lines else 0.0


def lesson_size(module: ModuleInfo, text: str) -> LessonSize:
    """Lines of the lesson, of its markdown cells, and of each given file."""
    lines = text.splitlines()
    prose = sum(c.end - c.start + 1 for c in stubs.split_cells(text) if c.kind == "markdown")
    given = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in module.given_files}
    return LessonSize(len(lines), prose, given)


def _pytest_counts(module: ModuleInfo) -> dict[str, int]:
    """Task id -> the number of test functions marked `@pytest.mark.task(...)` with it."""
    counts: dict[str, int] = {}
    for path in sorted(module.tests_dir.rglob("test_*.py")) if module.tests_dir.is_dir() else []:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for deco in node.decorator_list:
                source = ast.unparse(deco)
                for task in re.findall(r"mark\.task\(([^)]*)\)", source):
                    for tid in re.findall(r"['\"](\d+\.\d+)['\"]", task):
                        counts[tid] = counts.get(tid, 0) + 1
    return counts


def task_rows(module: ModuleInfo, text: str) -> list[TaskRow]:
    """Every task of the lesson `text`, in order."""
    rows: dict[str, TaskRow] = {}
    lines = text.splitlines()
    for sol in stubs.find_solutions(text, str(module.dev_file.relative_to(module.root))):
        if sol.task is None:
            continue
        body = sum(1 for ln in lines[sol.begin:sol.end - 1] if ln.strip())
        row = rows.setdefault(sol.task, TaskRow(sol.task, sol.where, 0, 0.0, 0))
        row.solution_lines += body
    for cell in grading.graded_cells(module, text):
        share = cell.points / len(cell.tasks) if cell.tasks else 0.0
        for task in cell.tasks:
            if task in rows:
                rows[task].points += share
    for task, n in _pytest_counts(module).items():
        if task in rows:
            rows[task].pytest_tests = n
    return list(rows.values())


def show(module: ModuleInfo, as_json: bool = False) -> int:
    """Print the lesson's size and task table; exit 1 when a task has no points or tests."""
    from tito.workflow import Store, _console, _table

    full = Store(module).full_text()
    text = full if full is not None else module.dev_file.read_text(encoding="utf-8")
    size, rows = lesson_size(module, text), task_rows(module, text)
    problems = [f"Task {r.task} carries no points" for r in rows if r.points <= 0]
    problems += [f"Task {r.task} has no pytest test marked with it" for r in rows if r.pytest_tests == 0]
    problems += [f"Task {r.task}: {r.solution_lines} solution lines (budget about {TASK_LINES})"
                 for r in rows if r.solution_lines > TASK_LINES + 5]
    if as_json:
        print(json.dumps({"lines": size.lines, "prose_lines": size.prose_lines, "given_lines": size.given_lines,
                          "tasks": [asdict(r) for r in rows], "problems": problems}, indent=2))
        return 1 if problems else 0
    table = _table(f"tasks of {module.dev_file.relative_to(module.root)}",
                   ["task", "where", "solution lines", "points", "pytest tests"])
    for r in rows:
        table.add_row(r.task, r.where, str(r.solution_lines), f"{r.points:g}", str(r.pytest_tests))
    console = _console()
    console.print(table)
    given = ", ".join(f"{name} {n}" for name, n in size.given_lines.items()) or "none"
    console.print(f"lesson: {size.lines} lines, {size.prose_share:.0%} prose; {len(rows)} tasks, "
                  f"{sum(r.solution_lines for r in rows)} solution lines, {sum(r.points for r in rows):g} points; "
                  f"given code: {given}")
    for problem in problems:
        console.print(f"problem: {problem}")
    return 1 if problems else 0


def register(subparsers) -> None:
    """Add `tito tasks` to the `tito` command."""
    p = subparsers.add_parser("tasks", help="a lesson's size and its tasks: solution lines, points, tests")
    p.add_argument("module", help="16_compression, 16 or compression")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lambda a: show(resolve_module(find_root(), a.module), as_json=a.json))
