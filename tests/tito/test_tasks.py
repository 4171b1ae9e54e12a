"""`tito tasks`: a lesson's size and its tasks (solution lines, points, tests)."""
from __future__ import annotations

import json
import re

from .conftest import TOY, Project, output


def _solution_lines(text: str) -> list[int]:
    """Non-blank lines inside each BEGIN/END SOLUTION pair, counted independently of tito."""
    counts, inside = [], None
    for line in text.splitlines():
        if "### BEGIN SOLUTION" in line:
            inside = 0
        elif "### END SOLUTION" in line:
            counts.append(inside)
            inside = None
        elif inside is not None and line.strip():
            inside += 1
    return counts


def test_tasks_reports_lines_points_tests_and_prose(project: Project):
    proc = project.tito("tasks", TOY, "--json")
    assert proc.returncode == 0, output(proc)
    data = json.loads(proc.stdout)
    text = project.dev_file(TOY).read_text()
    assert data["lines"] == len(text.splitlines())
    markdown = [ln for ln in text.splitlines() if ln.startswith("# %% [markdown]")]
    assert 0 < data["prose_lines"] < data["lines"] and len(markdown) > 0
    rows = {r["task"]: r for r in data["tasks"]}
    assert list(rows) == ["90.1", "90.2"]
    assert [rows[t]["solution_lines"] for t in rows] == _solution_lines(text)
    points = [float(p) for p in re.findall(r'"points": (\d+)', text)]
    assert [rows[t]["points"] for t in rows] == points == [1.0, 2.0]
    assert rows["90.1"]["pytest_tests"] == 1 and rows["90.2"]["pytest_tests"] == 1
    assert data["problems"] == []


def test_a_task_without_points_is_a_problem(project: Project):
    dev = project.dev_file(TOY)
    dev.write_text(dev.read_text().replace('"points": 2', '"points": 0'))
    proc = project.tito("tasks", TOY)
    assert proc.returncode == 1 and "Task 90.2 carries no points" in proc.stdout
