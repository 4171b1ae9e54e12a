"""`tito bench`: run every benchmark side by side (`python -m benchmarks`) from the project root."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tito.backups import note
from tito.project import TitoError, checked_target, find_root


def _checked_out(out: str) -> Path:
    """The report's path, checked before the run (which takes minutes): its folder exists and
    it is a regular file or nothing; a project file there is backed up first."""
    path = Path(out).resolve()
    if not path.parent.is_dir():
        raise TitoError(f"--out {out}: the folder {path.parent} does not exist; nothing was run")
    try:
        checked_target(path)
    except OSError as err:
        raise TitoError(f"--out {out}: {err.strerror}; nothing was run") from None
    note(path, "before tito bench --out wrote over it")
    return path


def run_benchmarks(quick: bool = False, out: str | None = None) -> int:
    """Run `python -m benchmarks` in the project root; returns its exit code.

    Raises:
        TitoError: the project has no `benchmarks/` package, or `out` cannot be written.
    """
    root = find_root()
    report = ["--out", str(_checked_out(out))] if out else []
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise TitoError(f"no benchmarks/__main__.py in {root}; the benchmarks ship with the project's sources")
    command = [sys.executable, "-m", "benchmarks"] + (["--quick"] if quick else []) + report
    return subprocess.run(command, cwd=root).returncode


def register(subparsers) -> None:
    """Add `tito bench` to the `tito` command."""
    p = subparsers.add_parser("bench", help="run every benchmark (TinyTorch vs PyTorch) and write benchmarks/RESULTS.md")
    p.add_argument("--quick", action="store_true", help="small settings: checks that every benchmark runs")
    p.add_argument("--out", help="write the report here (default: benchmarks/RESULTS.md for a full run)")
    p.set_defaults(func=lambda args: run_benchmarks(args.quick, args.out))
