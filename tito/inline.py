"""A lesson's inline tests, one task at a time, in a fresh interpreter.

To run some inline tests without running the whole file, a fresh interpreter executes
the dev file cell by cell as a module (so the `if __name__ == "__main__":` block stays
quiet, and a demo cell that calls an unfinished task only stops that cell), then calls
the chosen test functions and writes the outcome as JSON. `python -m tito.inline` is
that interpreter's entry point.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tito.explain import explain
from tito.project import ModuleInfo, TitoError, read_source, write_atomic
from tito.stubs import find_test_functions, split_cells


def _task_key(task: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[._]", task))


def tasks_of(name: str, doc: str | None, number: str) -> list[str]:
    """Task ids an inline test covers: `NN.M` in its docstring, `NN_M` in its name."""
    found = re.findall(rf"(?<![\d.]){re.escape(number)}\.\d+(?![\d])", doc or "")
    found += [f"{number}.{m}" for m in re.findall(rf"(?<!\d){re.escape(number)}_(\d+)(?!\d)", name)]
    return sorted(set(found), key=_task_key)


def inline_tests(module: ModuleInfo, text: str | None = None) -> dict[str, list[str]]:
    """Inline test function name -> the tasks it covers, in file order."""
    text = read_source(module.dev_file, module.root) if text is None else text
    return {name: tasks_of(name, ast.get_docstring(fn), module.number)
            for name, fn in find_test_functions(text).items()}


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
    text = read_source(path)
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
    text = read_source(path)
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
        cmd = [sys.executable, "-m", "tito.inline", "--number", module.number, "--out", str(out),
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


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tito.inline",
                                     description="load a dev file cell by cell and call some of its tests")
    parser.add_argument("dev_file", type=Path)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--number", required=True, help="the module number, for task ids")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON results go")
    args = parser.parse_args(argv)
    run = _run_here(args.dev_file.resolve(), args.names, args.number)
    data = {"results": [asdict(r) for r in run.results], "cell_errors": run.cell_errors}
    write_atomic(args.out, json.dumps(data).encode("utf-8"))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(_main())
