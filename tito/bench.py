"""`tito bench`: run every benchmark side by side (`python -m benchmarks`) from the project root."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tito.project import TitoError, find_root


def run_benchmarks(quick: bool = False, out: str | None = None) -> int:
    """Run `python -m benchmarks` in the project root; returns its exit code.

    Raises:
        TitoError: the project has no `benchmarks/` package.
    """
    root = find_root()
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise TitoError(f"no benchmarks/__main__.py in {root}; the benchmarks ship with the project's sources")
    command = [sys.executable, "-m", "benchmarks"] + (["--quick"] if quick else []) + (["--out", str(Path(out).resolve())] if out else [])
    return subprocess.run(command, cwd=root).returncode


def register(subparsers) -> None:
    """Add `tito bench` to the `tito` command."""
    p = subparsers.add_parser("bench", help="run every benchmark (TinyTorch vs PyTorch) and write benchmarks/RESULTS.md")
    p.add_argument("--quick", action="store_true", help="small settings: checks that every benchmark runs")
    p.add_argument("--out", help="write the report here (default: benchmarks/RESULTS.md for a full run)")
    p.set_defaults(func=lambda args: run_benchmarks(args.quick, args.out))
