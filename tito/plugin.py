"""A pytest plugin (`pytest -p tito.plugin`): after the run, the results grouped by task,
each failure explained in one short paragraph."""
from __future__ import annotations

import pytest

from tito.explain import explain
from tito.inline import _task_key

_ROWS = pytest.StashKey()


def pytest_configure(config) -> None:
    config.stash[_ROWS] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    rows = item.config.stash.get(_ROWS, None)
    if rows is None or (report.when != "call" and report.passed):
        return report
    if report.when != "call" and report.skipped:
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
    rows.append((item.name, tasks, outcome, message))
    return report


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
