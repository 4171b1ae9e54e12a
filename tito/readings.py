"""`tito readings`: a lesson's "Reading the results" prose, checked against recorded full runs.

A lesson's readings quote what its experiments print. `tito readings 16 --record` runs the
lesson in full, cell by cell, once under each OpenBLAS kernel this CPU can run (floating-point
sums, and so trained networks, differ by kernel), and keeps every code cell's output in
`modules/NN_name/runs/KERNEL.json`. `tito readings 16` then checks every figure of every
reading against the outputs of the code cells since the reading before it (cells are
counted in order, so prose may be edited freely; adding or removing a code cell needs a
new recording):

- a figure is a number with a decimal point or a thousands comma, a number followed by `%`
  or `x`, or a whole number of 100 or more; numbers in backticks are code and claims in double
  quotes are quoted from elsewhere (the page's "40x"): neither is a figure;
- a single figure must be printed, to its precision, under *every* kernel (`96.4%` matches
  0.9639 or 96.39%); a figure that moves with the kernel is written as a range `a-b`, and
  each end must be printed under some kernel; a figure followed by a kernel's name, as in
  `37.9 GFLOP/s (Prescott)` or `1.5 under Prescott`, must be printed under that kernel.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito.project import ModuleInfo, TitoError, read_source, write_atomic
from tito.stubs import split_cells

KERNELS = ("Haswell", "Prescott", "SkylakeX")
READING = re.compile(r"^(\*\*|#+ )Reading the results", re.M)
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# A figure in prose: a number or a range of two, with an optional unit right after it.
_FIGURE = re.compile(rf"(?<![\w.,-])({_NUMBER})(?:\s*[-\u2013]\s*({_NUMBER}))?(%|x\b)?(?![-\u2013]?\d)"
                     rf"(?:[^\S\n]*(?:\(|under |with )({'|'.join(KERNELS)})\b)?")
_PRINTED = re.compile(rf"-?(?:{_NUMBER})")


@dataclass
class Figure:
    """One figure of a reading: its text, its line in the lesson, and its value(s)."""

    text: str
    line: int
    values: tuple[float, ...]
    decimals: int
    kernel: str | None = None  # "37.9 (Prescott)": printed under that kernel only


def kernels_here() -> list[str]:
    """The OpenBLAS kernels this CPU runs: Prescott on any x86-64, Haswell with AVX2, SkylakeX
    with AVX-512 (it crashes without)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    flags = set(flags.split())
    return [k for k, need in zip(KERNELS, ("avx2", "sse2", "avx512f")) if need in flags]


def code_cells(text: str) -> list[tuple[int, str]]:
    """Each code cell of a percent-format lesson: its first line and its source."""
    lines = text.splitlines()
    return [(c.start, "\n".join(lines[c.start:c.end])) for c in split_cells(text) if c.kind == "code"]


def run_cells(path: Path) -> list[dict]:
    """Run the lesson's code cells in order in one namespace, as a notebook would; each cell's output."""
    namespace = {"__name__": "__main__", "__file__": str(path)}
    outputs = []
    for start, source in code_cells(path.read_text(encoding="utf-8")):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(source, f"{path}:{start}", "exec"), namespace)
        outputs.append({"line": start, "output": buffer.getvalue()})
    return outputs


def record(module: ModuleInfo, kernels: list[str] | None = None) -> list[Path]:
    """Run the lesson in full under each kernel (one BLAS thread) and write `runs/KERNEL.json`."""
    kernels = kernels or kernels_here()
    if not kernels:
        raise TitoError("no OpenBLAS kernel to record under: this is not an x86-64 CPU with /proc/cpuinfo")
    folder = module.dev_file.parent / "runs"
    folder.mkdir(exist_ok=True)
    written = []
    for kernel in kernels:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cells.json"
            env = dict(os.environ, OPENBLAS_CORETYPE=kernel, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                       MKL_NUM_THREADS="1", MPLBACKEND="Agg", TINYTORCH_QUIET="1", TINYTORCH_PLOTS=tmp,
                       PYTHONPATH=os.pathsep.join(filter(None, [str(module.root), os.environ.get("PYTHONPATH")])))
            env.pop("TINYTORCH_QUICK", None)
            proc = subprocess.run([sys.executable, "-m", "tito.readings", str(module.dev_file), str(out)],
                                  cwd=module.root, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise TitoError(f"the lesson failed under OPENBLAS_CORETYPE={kernel}:\n{proc.stderr[-2000:]}")
            # NOTE: the plots' temporary folder is this machine's; a recording names it <plots>.
            cells = [dict(c, output=c["output"].replace(tmp, "<plots>"))
                     for c in json.loads(out.read_text(encoding="utf-8"))]
        target = folder / f"{kernel}.json"
        write_atomic(target, (json.dumps({"kernel": kernel, "cells": cells}, indent=1) + "\n").encode("utf-8"))
        written.append(target)
    return written


def figures(text: str, first_line: int) -> list[Figure]:
    """The figures of one reading's text (numbers in backticks are code and left out)."""
    found = []
    for offset, line in enumerate(text.splitlines()):
        # Code in backticks and claims quoted from elsewhere ("40x") are not measurements.
        line = re.sub(r"`[^`]*`|\"[^\"]*\"", lambda m: " " * len(m.group()), line)
        for m in _FIGURE.finditer(line):
            ends = [g for g in (m.group(1), m.group(2)) if g]
            values = tuple(float(g.replace(",", "")) for g in ends)
            plain = not m.group(3) and len(ends) == 1 and "," not in ends[0] and "." not in ends[0]
            if plain and values[0] < 100:
                continue  # a small whole number: a count or a setting, not a measurement
            decimals = max(len(g.split(".")[1]) if "." in g else 0 for g in ends)
            text = line[m.start():max(m.end(g) for g in (1, 2, 3) if m.group(g))]
            found.append(Figure(text, first_line + offset, values, decimals, m.group(4)))
    return found


def readings(text: str) -> list[tuple[int, str, list[int]]]:
    """Each reading cell: its first line, its text, and the code cells it reads (those after the
    previous reading), counted from 0 in the lesson's order: prose edits do not move them."""
    lines = text.splitlines()
    found, since, index = [], [], 0
    for cell in split_cells(text):
        body = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[cell.start:cell.end])
        if cell.kind == "code":
            since.append(index)
            index += 1
        elif READING.search(body):
            found.append((cell.start + 1, body, since))
            since = []
    return found


def _printed(outputs: str) -> list[float]:
    return [float(n.replace(",", "")) for n in _PRINTED.findall(outputs)]


def _matches(value: float, decimals: int, printed: list[float]) -> bool:
    half = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(p - value) <= half or abs(100 * p - value) <= half for p in printed)


def recorded_runs(module: ModuleInfo) -> dict[str, dict[int, str]]:
    """The recorded runs of a lesson: kernel -> {code cell's index: its output}."""
    runs = sorted((module.dev_file.parent / "runs").glob("*.json"))
    if not runs:
        raise TitoError(f"{module.dirname} has no recorded runs: run 'tito readings {module.number} --record'")
    recorded = [json.loads(p.read_text(encoding="utf-8")) for p in runs]
    cells = len(code_cells(read_source(module.dev_file, module.root)))
    for r in recorded:
        if len(r["cells"]) != cells:
            raise TitoError(f"the recorded {r['kernel']} run of {module.dirname} has {len(r['cells'])} code cells, "
                            f"the lesson {cells}: record it again ('tito readings {module.number} --record')")
    return {r["kernel"]: dict(enumerate(c["output"] for c in r["cells"])) for r in recorded}


def _figure_problems(figs: list[Figure], printed: dict[str, list[float]], name: str) -> list[str]:
    problems = []
    for fig in figs:
        where = f"{name} line {fig.line}: {fig.text!r}"
        if fig.kernel is not None:
            if fig.kernel not in printed:
                problems.append(f"{where} names {fig.kernel}, which has no recorded run")
            else:
                problems += [f"{where} is not printed under {fig.kernel}" for v in fig.values
                             if not _matches(v, fig.decimals, printed[fig.kernel])]
        elif len(fig.values) == 1:
            missing = [k for k, nums in printed.items() if not _matches(fig.values[0], fig.decimals, nums)]
            if missing:
                problems.append(f"{where} is not printed under {', '.join(missing)}")
        else:
            everywhere = [n for nums in printed.values() for n in nums]
            problems += [f"{where}: {end:g} is printed under no kernel"
                         for end in fig.values if not _matches(end, fig.decimals, everywhere)]
    return problems


def measured_section(about: str) -> str:
    """The part of an ABOUT.md under its heading "## What the lesson measures" (empty if none)."""
    m = re.search(r"^## What the lesson measures\n(.*?)(?=^## |\Z)", about, flags=re.M | re.S)
    return m.group(1) if m else ""


def check(module: ModuleInfo) -> tuple[list[str], int]:
    """Every figure of the lesson's readings (against the code cells each reads) and of its
    ABOUT.md's measured section (against the whole run) in the recorded runs: the problems
    found, and the number of figures checked."""
    by_kernel = recorded_runs(module)
    text = read_source(module.dev_file, module.root)
    rel = str(module.dev_file.relative_to(module.root))
    problems, checked = [], 0
    for first, body, cells in readings(text):
        printed = {k: _printed("".join(out.get(line, "") for line in cells)) for k, out in by_kernel.items()}
        figs = figures(body, first)
        checked += len(figs)
        problems += _figure_problems(figs, printed, rel)
    about_path = module.dev_file.parent / "ABOUT.md"
    about = about_path.read_text(encoding="utf-8") if about_path.exists() else ""
    section = measured_section(about)
    figs = figures(section, about.count("\n", 0, about.find(section)) + 1 if section else 1)
    if figs:
        printed = {k: _printed("".join(out.values())) for k, out in by_kernel.items()}
        checked += len(figs)
        problems += _figure_problems(figs, printed, str(about_path.relative_to(module.root)))
    return problems, checked


def show(module: ModuleInfo, record_runs: bool = False) -> int:
    """`tito readings`: record the runs (with --record), then check every reading against them."""
    if record_runs:
        for path in record(module):
            print(f"wrote {path.relative_to(module.root)}")
    problems, checked = check(module)
    for problem in problems:
        print(problem)
    kernels = ", ".join(p.stem for p in sorted((module.dev_file.parent / "runs").glob("*.json")))
    print(f"readings of {module.dirname}: {checked - len(problems)} of {checked} figures printed by the "
          f"recorded runs ({kernels})")
    return 1 if problems else 0


def register(subparsers) -> None:
    """Add `tito readings` to the `tito` command."""
    from tito.project import find_root, resolve_module

    p = subparsers.add_parser("readings", help="check a lesson's readings against its recorded full runs")
    p.add_argument("module", help="16_compression, 16 or compression")
    p.add_argument("--record", action="store_true",
                   help="first run the lesson in full under each OpenBLAS kernel of this CPU and keep the outputs")
    p.set_defaults(func=lambda a: show(resolve_module(find_root(), a.module), record_runs=a.record))


if __name__ == "__main__":  # the child that `record` starts: run a lesson's cells, write their outputs
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    write_atomic(target, json.dumps(run_cells(source)).encode("utf-8"))
