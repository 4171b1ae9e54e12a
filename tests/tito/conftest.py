"""Fixtures for the tito tests: a throw-away copy of the project with a two-task toy module."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
TOY = "90_toy"
# NOTE: these tests only need to know which of a module's tests fail and which pass,
# fast: pytest's auto-loaded plugins (about a second per run) stay off, and
# data/quick_suite.py makes property tests draw few examples without shrinking and
# skips the PyTorch comparisons. Wide columns keep rich tables on one line.
ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_PLUGINS": "quick_suite",
       "HYPOTHESIS_PROFILE": "tito-workflow", "PYTHONPATH": str(DATA),
       "COLUMNS": "200", "MPLBACKEND": "Agg", "TINYTORCH_QUIET": "1"}
_SKIP = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", ".tito", "*.egg-info")


@dataclass
class Result:
    """What a `tito` command returned and printed."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class Project:
    """A copy of the project in a temporary folder, and ways to run `tito` in it."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(ENV)
        # NOTE: the copy must shadow the editable install of the real project, for
        # `tinytorch` and for `tito` alike; test_temp_project_imports_the_copy checks it.
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), str(DATA)])
        return env

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`python -m tito ...` in a fresh interpreter, as a student types it."""
        return subprocess.run([sys.executable, "-m", "tito", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def tito(self, *args: str) -> Result:
        """`tito ...` run in this process (faster); its test runs still start fresh interpreters
        whose PYTHONPATH begins with the copy (tito.testing puts the project root first)."""
        from tito import cli

        out, err = io.StringIO(), io.StringIO()
        old_cwd, old_env = Path.cwd(), {k: os.environ.get(k) for k in ENV}
        os.chdir(self.root)
        os.environ.update(ENV)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(list(args))
        finally:
            os.chdir(old_cwd)
            for key, value in old_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return Result(code, out.getvalue(), err.getvalue())

    def suite(self, dirname: str, *options: str) -> subprocess.CompletedProcess:
        """The module's pytest suite with tito's by-task summary; by default without the
        tests marked slow (they train networks for tens of seconds)."""
        options = options or ("-m", "not slow")
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "tito.plugin", "-q", "--tb=short",
                               *options, f"tests/{dirname}"],
                              cwd=self.root, env=self.env, capture_output=True, text=True)

    def dev_file(self, dirname: str) -> Path:
        return self.root / "modules" / dirname / f"{dirname.split('_', 1)[1]}_dev.py"


def output(proc: Result | subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def failing_tasks(text: str) -> set[str]:
    """Tasks with at least one failing test in `tito test` output (pytest or inline)."""
    tasks = set()
    for m in re.finditer(r"^Task (\d+\.\d+): (.*)$", text, re.M):
        if re.search(r"\d+ failed", m.group(2)):
            tasks.add(m.group(1))
    for m in re.finditer(r"^\s+FAILED\s+\S+ \[(.*)\]$", text, re.M):
        tasks |= set(re.findall(r"Task (\d+\.\d+)", m.group(1)))
    return tasks


def summary(text: str) -> tuple[int, int, int]:
    m = re.search(r"summary: (\d+) passed, (\d+) failed, (\d+) skipped", text)
    assert m, f"no summary line in:\n{text}"
    return tuple(map(int, m.groups()))


def make_project(dest: Path) -> Project:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for folder in ("modules", "tests", "tinytorch", "tito"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=_SKIP)
    toy = dest / "modules" / TOY
    toy.mkdir()
    shutil.copy2(DATA / "toy_dev.py", toy / "toy_dev.py")
    (toy / "ABOUT.md").write_text("# Module 90: Toy\n\nTwo tasks: `double` and `Counter.tick`.\n")
    (dest / "tests" / TOY).mkdir()
    shutil.copy2(DATA / "toy_tests.py", dest / "tests" / TOY / "test_toy.py")
    return Project(dest)


@pytest.fixture
def project(tmp_path) -> Project:
    """A fresh copy of the project, with the toy module exported."""
    proj = make_project(tmp_path / "project")
    proc = proj.tito("export", TOY)
    assert proc.returncode == 0, output(proc)
    return proj
