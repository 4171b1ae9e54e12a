"""A module's tests as a student sees them: one task at a time, failures in plain words, points.

Inline tests live in the dev file. To run some of them without running the whole
file, a fresh interpreter executes the dev file cell by cell as a module (so the
`if __name__ == "__main__":` block stays quiet, and a demo cell that calls an
unfinished task only stops that cell), then calls the chosen test functions and writes
the outcome as JSON. `python -m tito.grading` is that interpreter's entry point.

This file is also a pytest plugin (`pytest -p tito.grading`): after the run it prints
the results grouped by task, each failure explained in one short paragraph.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import linecache
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tito.project import ModuleInfo, TitoError
from tito.stubs import find_test_functions, split_cells

try:  # the plugin half needs pytest; the rest of tito does not
    import pytest

    _hookimpl = pytest.hookimpl
except ImportError:  # pragma: no cover - pytest is in the dev extra
    pytest = None

    def _hookimpl(**_):
        return lambda fn: fn


_NOT_IMPLEMENTED = re.compile(r"^\s*Task (\d+\.\d+)\s*:?\s*(.*)$", re.S)


# ----------------------------------------------------------------------------- words


def _short(value: object, limit: int = 240) -> str:
    """A one-glance repr: small arrays in full, big ones summarised, long text cut."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            body = np.array2string(value, threshold=24, edgeitems=3, precision=6)
            text = f"array({body}, shape={value.shape}, dtype={value.dtype})"
        else:
            text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real failure
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _frames(tb) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(tb)) if tb is not None else []


def _where(frame: traceback.FrameSummary) -> str:
    path = Path(frame.filename)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd())
    return f"{path}:{frame.lineno} in {frame.name}"


def _own_frame(frames: list[traceback.FrameSummary]) -> int:
    """Index of the innermost frame in the project (under the working folder), else the last."""
    here = Path.cwd().resolve()
    for i in range(len(frames) - 1, -1, -1):
        path = Path(frames[i].filename).resolve()
        if path.is_relative_to(here) and "site-packages" not in path.parts:
            return i
    return len(frames) - 1


def _assert_source(filename: str, lineno: int) -> str | None:
    """The whole `assert` statement around `lineno` (it may span lines), or None."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            return ast.get_source_segment(source, node)
    return None


def _values(statement: str, frame: types.FrameType) -> list[str]:
    """`expression = value` for what a failed assert looked at: its plain variables, and
    the two sides of each comparison when reading them calls nothing."""
    try:
        tree = ast.parse(statement)
    except SyntaxError:
        return []
    shown, out = set(), []
    sides = [side for node in ast.walk(tree) if isinstance(node, ast.Compare)
             for side in (node.left, *node.comparators)
             if not isinstance(side, ast.Name) and any(isinstance(n, ast.Name) for n in ast.walk(side))
             and not any(isinstance(n, (ast.Call, ast.Lambda, ast.NamedExpr)) for n in ast.walk(side))]
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    for node in names + sides:
        source = ast.unparse(node)
        if source in shown:
            continue
        shown.add(source)
        try:
            value = eval(compile(ast.Expression(node), "<assert>", "eval"), frame.f_globals, dict(frame.f_locals))
        except Exception:  # noqa: BLE001 - a value we cannot read is simply not shown
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
            continue
        out.append(f"{source} = {_short(value)}")
    return out


def explain(exc: BaseException, tb=None) -> str:
    """A failure in a student's words: which task is missing, or what was expected and what came back."""
    tb = tb if tb is not None else exc.__traceback__
    frames = _frames(tb)
    message = str(exc).strip()
    notes = [n for n in getattr(exc, "__notes__", []) if n.strip()][:3]
    if isinstance(exc, NotImplementedError):
        m = _NOT_IMPLEMENTED.match(message)
        if m:
            return f"Task {m.group(1)} is not implemented yet: {m.group(2).strip()}"
        where = f" ({_where(frames[-1])})" if frames else ""
        return f"not implemented yet{': ' + message if message else ''}{where}"
    if isinstance(exc, AssertionError):
        # Point at the project's own code (the test), not at numpy.testing's internals.
        depth = _own_frame(frames)
        last = frames[depth] if frames else None
        statement = _assert_source(last.filename, last.lineno) if last else None
        lines = [f"check failed at {_where(last)}" if last else "check failed"]
        if statement and not message.startswith("assert"):
            lines[0] += ": " + " ".join(statement.split())
        body = message.splitlines()
        lines += ["    " + ln for ln in body[:12]] + (["    ..."] if len(body) > 12 else [])
        if statement and not message.startswith("assert"):  # pytest already shows the values
            frame = tb
            for _ in range(depth):
                frame = frame.tb_next
            lines += ["    " + v for v in _values(statement, frame.tb_frame)[:6]]
        return "\n".join(lines + ["    " + n for n in notes])
    where = f"\n    raised at {_where(frames[_own_frame(frames)])}" if frames else ""
    body = message.splitlines()[:6]
    text = f"{type(exc).__name__}: {body[0] if body else ''}" + "".join(f"\n    {ln}" for ln in body[1:])
    return text + where + "".join(f"\n    {n}" for n in notes)


def headline(message: str, limit: int = 90) -> str:
    """One short line for a table: which task is missing, or where a check failed."""
    m = re.match(r"^Task (\d+\.\d+) is not implemented yet", message)
    if m:
        return f"Task {m.group(1)} not implemented yet"
    first = message.splitlines()[0] if message else "failed"
    first = re.sub(r"^check failed at (\S+):(\d+) in (\w+).*$", r"check failed in \3 (line \2)", first)
    return first if len(first) <= limit else first[: limit - 3] + "..."


def friendly_traceback_tail(output: str) -> str | None:
    """The plain-words version of the last exception line of a Python traceback."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    last = lines[-1]
    m = re.match(r"^NotImplementedError: (.*)$", last)
    if m:
        t = _NOT_IMPLEMENTED.match(m.group(1))
        if t:
            return f"Task {t.group(1)} is not implemented yet: {t.group(2).strip()}"
    return None


# ----------------------------------------------------------------------------- tasks


def _task_key(task: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[._]", task))


def tasks_of(name: str, doc: str | None, number: str) -> list[str]:
    """Task ids an inline test covers: `NN.M` in its docstring, `NN_M` in its name."""
    found = re.findall(rf"(?<![\d.]){re.escape(number)}\.\d+(?![\d])", doc or "")
    found += [f"{number}.{m}" for m in re.findall(rf"(?<!\d){re.escape(number)}_(\d+)(?!\d)", name)]
    return sorted(set(found), key=_task_key)


def inline_tests(module: ModuleInfo, text: str | None = None) -> dict[str, list[str]]:
    """Inline test function name -> the tasks it covers, in file order."""
    text = module.dev_file.read_text(encoding="utf-8") if text is None else text
    return {name: tasks_of(name, ast.get_docstring(fn), module.number)
            for name, fn in find_test_functions(text).items()}


# ----------------------------------------------------------------------------- running inline tests


@dataclass
class InlineResult:
    """The outcome of one inline test function."""

    name: str
    tasks: list[str]
    passed: bool
    message: str = ""
    output: str = ""


@dataclass
class InlineRun:
    """Every result of one run, plus the cells that stopped early while loading the file."""

    results: list[InlineResult] = field(default_factory=list)
    cell_errors: dict[int, str] = field(default_factory=dict)  # `# %%` line -> explanation


def _future_flags(tree: ast.Module) -> int:
    import __future__

    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


def load_dev_file(path: Path) -> tuple[types.ModuleType, dict[int, str]]:
    """Execute a dev file cell by cell as a module; a failing cell stops only itself."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, str(path))
    flags = _future_flags(tree)
    cells = [c for c in split_cells(text) if c.kind == "code"]
    name = path.stem
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    errors: dict[int, str] = {}
    for cell in cells:
        body = [s for s in tree.body if cell.start <= s.lineno <= cell.end]
        if not body:
            continue
        code = compile(ast.Module(body=body, type_ignores=[]), str(path), "exec", flags=flags, dont_inherit=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, module.__dict__)
        except Exception as exc:  # noqa: BLE001 - a cell's error is reported, not fatal
            errors[cell.start] = explain(exc)
    return module, errors


def _run_here(path: Path, names: list[str], number: str) -> InlineRun:
    text = path.read_text(encoding="utf-8")
    functions = find_test_functions(text)
    try:
        module, errors = load_dev_file(path)
    except SyntaxError as err:
        problem = f"{path.name} does not compile: line {err.lineno}: {err.msg}\n    {(err.text or '').strip()}"
        return InlineRun([InlineResult(n, tasks_of(n, "", number), False, problem) for n in names])
    run = InlineRun(cell_errors=errors)
    for name in names:
        tasks = tasks_of(name, ast.get_docstring(functions[name]) if name in functions else "", number)
        fn = module.__dict__.get(name)
        if not callable(fn):
            run.results.append(InlineResult(name, tasks, False, f"{name} is not defined in {path.name}"))
            continue
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                fn()
        except Exception as exc:  # noqa: BLE001 - a failing test is a result
            run.results.append(InlineResult(name, tasks, False, explain(exc), out.getvalue()[-2000:]))
        else:
            run.results.append(InlineResult(name, tasks, True, "", out.getvalue()[-2000:]))
    return run


def run_inline_tests(module: ModuleInfo, names: list[str], env: dict[str, str] | None = None,
                     timeout: float | None = None) -> InlineRun:
    """Run some inline tests of `module` in a fresh interpreter (nothing leaks into this one).

    Args:
        module: whose dev file to load.
        names: the `test_*` functions to call, in order.
        env: the subprocess environment (the project root must be importable).
        timeout: seconds before the run is abandoned.

    Returns:
        One result per name, and the cells that failed while loading the file.

    Raises:
        TitoError: the interpreter died without writing its results.
    """
    with tempfile.TemporaryDirectory(prefix="tito-inline-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "tito.grading", "--number", module.number, "--out", str(out),
               str(module.dev_file), *names]
        try:
            proc = subprocess.run(cmd, cwd=module.root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TitoError(f"inline tests of {module.dirname} took longer than {timeout:.0f} s") from None
        if not out.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise TitoError(f"could not load {module.dev_file.relative_to(module.root)}:\n{tail}")
        data = json.loads(out.read_text(encoding="utf-8"))
    return InlineRun([InlineResult(**r) for r in data["results"]],
                     {int(k): v for k, v in data["cell_errors"].items()})


def print_inline(run: InlineRun, title: str) -> None:
    """The results of an inline run, task by task, failures explained."""
    print(title)
    for res in run.results:
        tasks = ", ".join(f"Task {t}" for t in res.tasks) or "no task"
        print(f"  {'passed' if res.passed else 'FAILED'}  {res.name} [{tasks}]")
        if not res.passed:
            print("\n".join("          " + ln for ln in res.message.splitlines()))
    # NOTE: once a cell stops at a stub, later cells that use its names fail with a
    # NameError; those are the same cause, not news.
    unfinished, other, after_stub = 0, [], False
    for line, msg in sorted(run.cell_errors.items()):
        if "is not implemented yet" in msg or (after_stub and msg.startswith("NameError")):
            unfinished, after_stub = unfinished + 1, True
        else:
            other.append((line, msg))
    if unfinished:
        print(f"  ({unfinished} demo cell(s) stopped early because a task is not implemented yet)")
    for line, msg in other:
        print(f"  note: the cell at line {line} failed: " + msg.replace("\n", "\n        "))


def run_task_inline(module: ModuleInfo, task: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    """Run the inline tests that cover `task`; prints them; returns (passed, failed)."""
    names = [n for n, tasks in inline_tests(module).items() if task in tasks]
    rel = module.dev_file.relative_to(module.root)
    if not names:
        print(f"inline tests {rel}: none covers Task {task}")
        return 0, 0
    run = run_inline_tests(module, names, env=env)
    print_inline(run, f"inline tests of Task {task} in {rel}:")
    passed = sum(r.passed for r in run.results)
    return passed, len(run.results) - passed


# ----------------------------------------------------------------------------- grading


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
    text = module.dev_file.read_text(encoding="utf-8") if text is None else text
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


def grade(module: ModuleInfo, env: dict[str, str] | None = None) -> list[GradedCell]:
    """Run every graded cell's tests; a cell earns its points when all of them pass."""
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
    return cells


# ----------------------------------------------------------------------------- pytest plugin


_ROWS = pytest.StashKey() if pytest is not None else None


def pytest_configure(config) -> None:
    config.stash[_ROWS] = []


@_hookimpl(wrapper=True)
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


# ----------------------------------------------------------------------------- subprocess entry


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tito.grading",
                                     description="load a dev file cell by cell and call some of its tests")
    parser.add_argument("dev_file", type=Path)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--number", required=True, help="the module number, for task ids")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON results go")
    args = parser.parse_args(argv)
    run = _run_here(args.dev_file.resolve(), args.names, args.number)
    data = {"results": [asdict(r) for r in run.results], "cell_errors": run.cell_errors}
    args.out.write_text(json.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(_main())
