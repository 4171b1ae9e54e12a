"""A pytest plugin (`pytest -p tito.plugin`): after the run, the results grouped by task,
each failure explained in one short paragraph, and every skip grouped by its reason.

With the environment variable `TITO_REPORT` naming a file, the run is also written there as
JSON: `{"skips": [{"reason": ..., "count": N}], "tasks": {"16.3": {"passed": [test names],
"failed": [...]}}}`, so that `tito test` repeats the skips in its own summary and `tito grade`
withholds the points of a task whose tests fail.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from tito.explain import explain
from tito.inline import _task_key

_ROWS = pytest.StashKey()


_REFERENCE_INSTALL = 'pip install -e ".[dev,reference]"'


def skip_reason(longrepr) -> str:
    """One line saying why a test (or a whole file) was skipped; a missing reference package
    is named with the command that installs it."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    text = text.removeprefix("Skipped: ").strip().splitlines()[0] if text.strip() else "no reason given"
    m = re.match(r"could not import '([\w.]+)'", text)
    if m:
        return f"needs {m.group(1).split('.')[0]!r}, not installed here (install it with: {_REFERENCE_INSTALL})"
    return text


_collect_rows: list = []  # this run's rows, for the one hook that is given no config


def pytest_configure(config) -> None:
    config.stash[_ROWS] = _collect_rows


def pytest_collectreport(report) -> None:
    """A file skipped as a whole (a module-level `pytest.importorskip`) is one skipped row."""
    if report.skipped:
        _collect_rows.append((report.nodeid, [], "skipped", skip_reason(report.longrepr)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    rows = item.config.stash.get(_ROWS, None)
    if rows is None or (report.when != "call" and report.passed):
        return report
    if report.skipped and not hasattr(report, "wasxfail"):
        outcome = "skipped"
    elif hasattr(report, "wasxfail"):
        outcome = "passed" if report.skipped else "failed"  # an expected failure, or an unexpected pass
    else:
        outcome = report.outcome
    tasks = sorted({str(a) for m in item.iter_markers("task") for a in m.args}, key=_task_key)
    message = ""
    if outcome == "failed" and call.excinfo is not None:
        message = explain(call.excinfo.value, call.excinfo.tb)
        if report.when == "setup":
            message = "while preparing the test: " + message
        if isinstance(call.excinfo.value, NotImplementedError) and message.startswith("Task "):
            # A stub's traceback says nothing the one line does not.
            report.longrepr = message
    if outcome == "skipped":
        message = skip_reason(report.longrepr)
    rows.append((item.name, tasks, outcome, message))
    return report


def skip_groups(rows) -> list[dict]:
    """The skipped rows counted by reason, most frequent first."""
    counts: dict[str, int] = {}
    for _, _, outcome, message in rows:
        if outcome == "skipped":
            counts[message] = counts.get(message, 0) + 1
    return [{"reason": r, "count": n} for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    by_task: dict[str, dict[str, int]] = {}
    for _, tasks, outcome, _ in rows:
        for task in tasks or ["-"]:
            counts = by_task.setdefault(task, {})
            counts[outcome] = counts.get(outcome, 0) + 1
    tr = terminalreporter
    tr.section("results by task", sep="-")
    for task in sorted(by_task, key=lambda t: (t == "-", _task_key(t) if t != "-" else ())):
        counts = by_task[task]
        parts = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped") if counts.get(k))
        label = f"Task {task}" if task != "-" else "(no task marker)"
        tr.write_line(f"{label}: {parts}")
    groups = skip_groups(rows)
    if groups:
        tr.write_line("")
        tr.write_line("skipped, and why:")
        for g in groups:
            tr.write_line(f"  {g['count']} skipped: {g['reason']}")
    failures: dict[str, list[str]] = {}
    for name, tasks, outcome, message in rows:
        if outcome == "failed":
            label = ", ".join(f"Task {t}" for t in tasks) or "no task"
            failures.setdefault(message, []).append(f"{name} [{label}]")
    if failures:
        tr.write_line("")
        tr.write_line("what went wrong:")
        for message, tests in failures.items():
            lines = message.splitlines() or ["(no message)"]
            tr.write_line(f"  {lines[0]}")
            for line in lines[1:]:
                tr.write_line(f"  {line}")
            shown = ", ".join(tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
            tr.write_line(f"      in {len(tests)} test(s): {shown}")


def by_task(rows) -> dict[str, dict[str, list[str]]]:
    """Each task's passed and failed test names."""
    tasks: dict[str, dict[str, list[str]]] = {}
    for name, task_ids, outcome, _ in rows:
        for task in task_ids:
            if outcome in ("passed", "failed"):
                tasks.setdefault(task, {"passed": [], "failed": []})[outcome].append(name)
    return tasks


def pytest_sessionfinish(session, exitstatus) -> None:
    path = os.environ.get("TITO_REPORT")
    if path:
        rows = session.config.stash.get(_ROWS, [])
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"skips": skip_groups(rows), "tasks": by_task(rows)}, f)
