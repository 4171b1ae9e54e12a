"""`tito test`: a module's inline tests (`python <dev file>`), then its pytest suite.

With `--task 16.3` only that task's tests run: the inline tests whose docstring or name
names it, and the pytest tests marked `@pytest.mark.task("16.3")`. Failures are
explained task by task (`tito.plugin`, `tito.explain`), not as a wall of traceback.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tito.project import ModuleInfo, TitoError, read_source

_PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|error|errors|skipped)")
# A lesson whose demonstrations need a package that is not installed says so on its last
# line and exits with this code (the "skipped" of automake's test protocol).
SKIP_EXIT = 77


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("TINYTORCH_QUIET", "1")
    # Lessons shorten their measured analyses (fewer epochs, smaller sweeps) under test.
    env.setdefault("TINYTORCH_QUICK", "1")
    # NOTE: one BLAS thread: on a busy 2-core machine a second thread makes small matmuls
    # many times slower, and a fixed thread count keeps float sums (and so training
    # trajectories and the accuracy tests) the same from run to run.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def run_inline(module: ModuleInfo, quiet: bool = False) -> bool | str:
    """Run the dev file as a script; its `__main__` block calls the inline tests.

    Returns True (passed), False (failed), or the reason the lesson gave for skipping.
    """
    rel = module.dev_file.relative_to(module.root)
    read_source(module.dev_file, module.root)  # a file that is not UTF-8 is named, not run
    proc = subprocess.run(
        [sys.executable, str(module.dev_file)], cwd=module.root, env=_env(module.root),
        capture_output=True, text=True,
    )
    if proc.returncode == SKIP_EXIT:
        lines = proc.stdout.strip().splitlines() or ["(no reason given)"]
        reason = lines[-1].removeprefix("skipped: ")
        print(f"inline tests {rel}: skipped, {reason}")
        return f"{rel}: {reason}"
    ok = proc.returncode == 0
    if not ok or not quiet:
        out = (proc.stdout + proc.stderr).rstrip()
        from tito.explain import friendly_traceback_tail

        stub = None if ok else friendly_traceback_tail(out)
        if stub:  # a stub's traceback says nothing the one line does not
            print(f"{rel} stopped: {stub}")
        elif out:
            print(out if not ok else "\n".join(out.splitlines()[-3:]))
    print(f"inline tests {rel}: {'passed' if ok else 'FAILED'}")
    if not ok:
        _explain_inline(module)
    return ok


def _explain_inline(module: ModuleInfo) -> None:
    """After a failed script run: every inline test on its own, so each task gets its verdict."""
    from tito import inline

    names = list(inline.inline_tests(module))
    if not names:
        return
    try:
        run = inline.run_inline_tests(module, names, env=_env(module.root))
    except TitoError as err:
        print(err)
        return
    inline.print_inline(run, "inline tests one by one:")


def pytest_report(root: Path, args: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """`python -m pytest -p tito.plugin ARGS` in `root`; its process and tito.plugin's report
    (`{"skips": [...], "tasks": {...}}`, empty where pytest stopped before writing it)."""
    args = [sys.executable, "-m", "pytest", "-p", "tito.plugin", *args]
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(root) | {"TITO_REPORT": str(Path(tmp) / "report.json")}
        proc = subprocess.run(args, cwd=root, env=env, text=True, capture_output=True)
        try:
            report = json.loads((Path(tmp) / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # pytest stopped before the plugin wrote it
            report = {}
    return proc, report


def run_pytest(root: Path, paths: list[Path], task: str | None,
               quiet: bool) -> tuple[int, dict[str, int], list[dict]]:
    """One pytest run; its exit code, its counts, and its skips grouped by reason."""
    # tito.plugin sums the results up by task, explains each failure and groups the skips.
    args = [str(p) for p in paths]
    if task:
        args += ["--task", task, "--tb=no"]
    else:
        args += ["--tb=short"]
    args += ["-q"] if quiet else []
    proc, report = pytest_report(root, args)
    skips = report.get("skips", [])
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    counts: dict[str, int] = {}
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    for n, kind in _PYTEST_COUNTS.findall(" ".join(tail)):
        kind = "error" if kind.startswith("error") else kind
        counts[kind] = counts.get(kind, 0) + int(n)
    return proc.returncode, counts, skips


def _warn_if_stale(modules: list[ModuleInfo]) -> None:
    """Tests import the package: say so when it is not what the dev files export."""
    from tito import export

    try:
        stale = export.differences([export.render(m) for m in modules])
    except TitoError as err:
        print(f"note: {err}")
        return
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(f"note: not what the module source exports: {names}. The tests use the package, "
              f"so run 'tito export' first to test your latest code")


_MARK = re.compile(r"""mark\.task\(\s*["']([^"']+)["']""")


def _check_task(task: str, modules: list[ModuleInfo]) -> None:
    """Refuse a task that no lesson of `modules` has and no test is marked with."""
    from tito import stubs

    known: set[str] = set()
    for m in modules:
        if m.dev_file.is_file():
            text = read_source(m.dev_file, m.root)
            known.update(stubs.task_ids(text), stubs.stubs_left(text))
        for test in sorted(m.tests_dir.glob("**/*.py")) if m.tests_dir.is_dir() else ():
            known.update(_MARK.findall(test.read_text(encoding="utf-8", errors="replace")))
    if task not in known:
        from tito.inline import _task_key

        shown = ", ".join(sorted(known, key=_task_key))
        raise TitoError(f"--task {task} is not a task of {', '.join(m.dirname for m in modules)}; "
                        f"the tasks are: {shown or '(none)'}")


def run(root: Path, modules: list[ModuleInfo], task: str | None = None, quiet: bool = False,
        everything: bool = False) -> int:
    """Inline tests of each module, then one pytest run over their suites.

    With `everything` (`tito test --all`) pytest runs the whole `tests/` folder: the
    module suites and the others (tito itself, benchmarks, integration).
    """
    if task and re.fullmatch(r"\d+\.\d+", task):
        major, minor = task.split(".")
        task = f"{int(major):02d}.{minor}"  # "5.1" names Task 05.1
    if task:
        modules = [m for m in modules if task.split(".")[0] == m.number] or modules
        _check_task(task, modules)
    _warn_if_stale(modules)
    inline = {m.dirname: run_inline(m, quiet) for m in modules if not task}
    inline_failed = [name for name, result in inline.items() if result is False]
    inline_skipped = [result for result in inline.values() if isinstance(result, str)]
    task_passed = task_failed = 0
    if task:
        from tito import inline

        for m in modules:
            p, f = inline.run_task_inline(m, task, env=_env(root))
            task_passed, task_failed = task_passed + p, task_failed + f
    suites = [m.tests_dir for m in modules if m.tests_dir.is_dir()]
    if everything and (root / "tests").is_dir():
        suites = [root / "tests"]
    code, counts, skips = (run_pytest(root, suites, task, quiet) if suites else (5, {}, []))
    passed = counts.get("passed", 0) + (list(inline.values()).count(True) if not task else task_passed)
    failed = counts.get("failed", 0) + counts.get("error", 0) + len(inline_failed) + task_failed
    skipped = counts.get("skipped", 0) + len(inline_skipped)
    # NOTE: pytest exits 5 when a selection runs no test; that is a failure here only
    # when nothing else ran either.
    pytest_ok = code == 0 or (code == 5 and passed > 0)
    if task and not (passed or failed):
        print(f"no test covers Task {task} (inline tests name it in their docstring; "
              f"pytest tests carry @pytest.mark.task({task!r}))")
    print(f"summary: {passed} passed, {failed} failed, {skipped} skipped")
    for reason in inline_skipped:
        print(f"  skipped the inline tests of {reason}")
    for group in skips:
        print(f"  {group['count']} skipped: {group['reason']}")
    return 0 if (pytest_ok and not failed) else 1
