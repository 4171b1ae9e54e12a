"""Run every benchmark in one go and write `benchmarks/RESULTS.md`: `python -m benchmarks` or `tito bench`.

Every benchmark follows one protocol: its module has `main(argv: list[str] | None = None)
-> list[dict]`, which prints its human table and returns its rows (flat dicts; a value may
itself be a list of rows, and rows of a benchmark that prints several tables carry the
name of theirs under "table"). `plan` lists (title, module, argv) for each section; each
main runs in this process, and RESULTS.md and its summary are built from the rows it
returned, never from what it printed. A benchmark that fails is reported as a failed
section with its error, the others still run, and the run exits non-zero.

Each section says what it measures and how; the file starts with the machine, the
versions and the date, because every figure below belongs to them. Timings in one
section are taken in interleaved rounds (Module 14's `time_rounds`) wherever the
benchmark allows it, so a busy moment of the machine slows both sides alike: the ratios
are the figures to compare across machines, not the absolute times.

    python -m benchmarks [--quick] [--out PATH]

`--quick` runs every benchmark with small settings (a check that they all work) and
writes the report only where `--out` says; a full run writes `benchmarks/RESULTS.md`.
PyTorch is optional: without it, its columns say so.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
NO_TORCH = "n/a (PyTorch not installed)"


# ----------------------------------------------------------------------------- the machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, versions, BLAS, date and commit of this run."""
    import numpy as np

    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    info = {
        "CPU": cpu.group(1).strip() if cpu else (platform.processor() or platform.machine()),
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem.group(1)) / 2**20:.1f} GiB" if mem else "unknown",
        "OS": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "BLAS": _blas(),
        "torch": _torch_version() or "not installed",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _commit(),
        "load average at start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    return info


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def _blas() -> str:
    from threadpoolctl import threadpool_info  # a dependency of tinytorch (Module 14's one-thread timing)

    found = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(found) or "unknown"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
        # NOTE: the measured code only: new untracked files and this report do not change it.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "tinytorch",
                                "benchmarks", ":!benchmarks/RESULTS.md"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


# ----------------------------------------------------------------------------- formatting


def fmt(value, digits: int = 3) -> str:
    """A table cell: None says PyTorch is missing, floats get `digits` significant digits."""
    if value is None:
        return NO_TORCH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN: a figure the benchmark did not measure for this row
            return "n/a"
        return f"{value:,.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_table(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


# A key `x` with a companion `x_sd` (sample standard deviation over seeds) or `x_spread`
# (max - min over seeds) shares one cell with it: "mean ± sd", "mean ± half the range".
SPREADS = {"_sd": ("sd", 1.0), "_spread": ("half range", 0.5)}


def _spread_of(key: str, keys) -> tuple[str, str, float] | None:
    """(companion key, its name, its scale) of `key`, or None when it has none."""
    return next(((key + end, name, scale) for end, (name, scale) in SPREADS.items() if key + end in keys), None)


def _cell(row: dict, key: str, spread: tuple[str, str, float] | None, missing: str):
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # NaN: not measured for this row
        return missing
    if spread is None or row.get(spread[0]) is None:
        return value
    return f"{fmt(value)} ± {fmt(spread[2] * row[spread[0]])}"


def generic_table(rows: list[dict]) -> str:
    """Rows of a benchmark we know nothing about: one column per key; a missing value reads n/a.

    A value that is itself a list of rows gets a table of its own below, captioned with
    the first three fields of the row it belongs to.
    """
    keys = [k for k in dict.fromkeys(k for row in rows for k in row)
            if not any(_is_table(row.get(k)) for row in rows)]
    spreads = {k: _spread_of(k, keys) for k in keys}
    keys = [k for k in keys if not any(s and s[0] == k for s in spreads.values())]
    missing = {k: NO_TORCH if "torch" in k and _torch_version() is None else "n/a" for k in keys}
    header = [k if spreads[k] is None else f"{k} (± {spreads[k][1]})" for k in keys]
    text = table(header, [[_cell(row, k, spreads[k], missing[k]) for k in keys] for row in rows])
    for row in rows:
        for key, value in row.items():
            if _is_table(value):
                about = ", ".join(f"{k} {v}" for k, v in list(row.items())[:3] if not _is_table(v))
                text += f"\n\n{key} ({about}):\n\n" + generic_table(value)
    return text


def section_rows(rows: list[dict], doc: str | None) -> str:
    """A benchmark's rows, after the first line and the goal its docstring states.

    Rows that name their table (key "table") get one table per name, in order.
    """
    lines = (doc or "").strip().splitlines()
    about = [lines[0]] if lines else []
    about += [line.strip() for line in lines if line.strip().startswith("Goal")]
    if not rows:
        return "\n\n".join(about + ["(the benchmark returned no rows)"])
    groups: dict[str | None, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get("table"), []).append({k: v for k, v in row.items() if k != "table"})
    tables = [generic_table(group) if name is None else f"{name}:\n\n{generic_table(group)}"
              for name, group in groups.items()]
    return "\n\n".join(about + tables)


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def _times(a: float | None, unit: str = "x") -> str | None:
    return None if a is None else f"{a:.2f}{unit}"


def _seconds(s: float | None, spread: float | None) -> str | None:
    return None if s is None else f"{s:.3f} ({spread:.0%})"


# ----------------------------------------------------------------------------- sections


def section_prune(rows: list[dict], doc: str | None = None) -> str:
    body = table(
        ["method", "TinyTorch s (spread)", "torch s (spread)", "TinyTorch faster by", "TinyTorch extra memory",
         "torch extra memory"],
        [[r["method"], _seconds(r["tinytorch_s"], r["tinytorch_spread"]), _seconds(r["torch_s"], r["torch_spread"]),
          _times(r["speedup"]), _times(r["tinytorch_extra_x"], "x weights"),
          _times(r["torch_extra_x"], "x weights")] for r in rows])
    return body + (f"\n\nThe same 4 equal Linear layers ({rows[0]['weights'] / 1e6:.1f}M float32 weights) pruned to "
                   f"{rows[0]['sparsity']:.0%} by `magnitude_prune` (global, scope=\"layer\") and `structured_prune` "
                   "(L1 rows) against `torch.nn.utils.prune` (`global_unstructured` + `L1Unstructured`, "
                   "`l1_unstructured` per layer, `ln_structured(n=1, dim=0)`), then `prune.remove`. Each pruner "
                   "runs in a fresh process; extra memory is the peak resident memory while pruning minus the "
                   "memory with the weights loaded, in units of the weights' own size; times are medians of "
                   "`time_rounds`' rounds, each pruning fresh weights, with the spread of the rounds.")


def section_pipeline(rows: list[dict], doc: str | None = None) -> str:
    header = ["seed", "TinyTorch dense", "torch dense", "TinyTorch 90%", "torch 90%", "TinyTorch 90% + INT8 (from file)",
              "TinyTorch CPU s", "torch CPU s"]
    body = [[r["seed"], _pct(r["tinytorch_dense"]), _pct(r["torch_dense"]), _pct(r["tinytorch_final"]),
             _pct(r["torch_final"]), _pct(r["tinytorch_int8_accuracy"]), f"{r['tinytorch_cpu_seconds']:.2f}",
             None if r["torch_cpu_seconds"] is None else f"{r['torch_cpu_seconds']:.2f}"] for r in rows]
    if len(rows) > 1:
        mean = _means(rows, ["tinytorch_dense", "torch_dense", "tinytorch_final", "torch_final",
                             "tinytorch_int8_accuracy", "tinytorch_cpu_seconds", "torch_cpu_seconds"])
        body.append(["mean", _pct(mean["tinytorch_dense"]), _pct(mean["torch_dense"]), _pct(mean["tinytorch_final"]),
                     _pct(mean["torch_final"]), _pct(mean["tinytorch_int8_accuracy"]),
                     f"{mean['tinytorch_cpu_seconds']:.2f}",
                     None if mean["torch_cpu_seconds"] is None else f"{mean['torch_cpu_seconds']:.2f}"])
    steps = [[r["seed"], ", ".join(f"{100 * a:.1f}" for a in r["tinytorch_steps"]),
              NO_TORCH if r["torch_steps"] is None else ", ".join(f"{100 * a:.1f}" for a in r["torch_steps"]),
              f"{100 * r['tinytorch_sparsity']:.2f}%",
              None if r["torch_sparsity"] is None else f"{100 * r['torch_sparsity']:.2f}%"] for r in rows]
    return (table(header, body) + "\n\nTest accuracy (360 images) of the MLP 64-128-64-10 after each phase. "
            "Both frameworks start from the same weights, see the same batches in the same order, use the "
            "same Adam settings and prune the same number of weights at each step (see "
            "`benchmarks/bench_pipeline.py`); the INT8 column is TinyTorch's compressed file read back "
            "from disk. Accuracy after each of the pruning steps (%):\n\n"
            + table(["seed", "TinyTorch", "torch", "TinyTorch sparsity", "torch sparsity"], steps)
            + "\n\n### Bytes on disk: pruned + INT8 vs a pruned PyTorch state_dict\n\n" + section_bytes(rows))


def _means(rows: list[dict], keys: list[str]) -> dict[str, float | None]:
    """The mean of each key over the rows; None where a row has None (PyTorch missing)."""
    values = {k: [r[k] for r in rows] for k in keys}
    return {k: None if None in v else sum(v) / len(v) for k, v in values.items()}


def section_bytes(rows: list[dict]) -> str:
    r = rows[0]
    base = r["torch_dense_bytes"]
    entries = [
        (f"float32 parameters, raw ({r['weights']:,} values x 4 bytes)", r["dense_fp32_bytes"]),
        ("PyTorch: `torch.save(state_dict)` after `prune.remove` (dense fp32 with zeros)", r["torch_dense_bytes"]),
        ("PyTorch: the same with 2-D weights as `to_sparse_csr()`", r["torch_csr_bytes"]),
        ("PyTorch: the dense file compressed with xz -9e", r["torch_dense_xz_bytes"]),
        ("TinyTorch: `save_compressed` of the pruned fp32 model", r["tinytorch_fp32_bytes"]),
        ("TinyTorch: `save_compressed(prune_and_quantize(...))`, 90% + INT8", r["tinytorch_int8_bytes"]),
    ]
    body = [[name, size, None if (base is None or size is None) else f"{base / size:.1f}x"] for name, size in entries]
    return (table(["file", "bytes", "smaller than torch.save dense by"], body)
            + f"\n\nThe 90%-pruned digits MLP of seed {r['seed']} from the pipeline above (each framework "
            "saves its own pruned model; the two have the same architecture and sparsity). "
            "`prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True)` keeps the "
            "pruning's zeros, stores one scale per layer and int8 biases.")


def section_text(text: str) -> str:
    return "```\n" + text.strip() + "\n```"


# ----------------------------------------------------------------------------- the summary
# Each function turns one benchmark's rows into its lines of the summary table:
# [measurement, TinyTorch, PyTorch, comparison]. Rows of another shape raise, and the
# benchmark's section then reports the error.


def headline_prune(rows: list[dict]) -> list[list]:
    what = {"global": "Global magnitude pruning", "layer": "Layer-wise magnitude pruning",
            "structured": "Structured (L1 rows) pruning"}
    return [[f"{what[r['method']]}, {r['weights'] / 1e6:.1f}M weights to {r['sparsity']:.0%}",
             f"{r['tinytorch_s']:.3f} s, {r['tinytorch_extra_x']:.1f}x weights extra memory",
             None if r["torch_s"] is None else f"{r['torch_s']:.3f} s, {r['torch_extra_x']:.1f}x weights extra memory",
             None if r["speedup"] is None else f"TinyTorch {r['speedup']:.1f}x faster"] for r in rows]


def headline_pipeline(rows: list[dict]) -> list[list]:
    mean = _means(rows, ["tinytorch_dense", "tinytorch_final", "tinytorch_int8_accuracy", "torch_dense", "torch_final"])
    torch = None if mean["torch_final"] is None else \
        f"{100 * mean['torch_final']:.1f}% (dense {100 * mean['torch_dense']:.1f}%)"
    first = rows[0]
    theirs = first["torch_dense_bytes"]
    return [[f"Digits MLP, same pipeline to 90% sparsity: test accuracy, mean of {len(rows)} seed(s)",
             f"{100 * mean['tinytorch_final']:.1f}% (dense {100 * mean['tinytorch_dense']:.1f}%; "
             f"{100 * mean['tinytorch_int8_accuracy']:.1f}% after INT8, read from the file)", torch,
             None if torch is None else f"{100 * (mean['tinytorch_final'] - mean['torch_final']):+.1f} points"],
            ["Digits MLP at 90%: bytes on disk", f"{first['tinytorch_int8_bytes']:,} (sparse INT8 file)",
             None if theirs is None else f"{theirs:,} (torch.save); {first['torch_csr_bytes']:,} (CSR); "
                                         f"{first['torch_dense_xz_bytes']:,} (xz)",
             None if theirs is None else f"{theirs / first['tinytorch_int8_bytes']:.1f}x smaller than torch.save"]]


def headline_structured(rows: list[dict]) -> list[list]:
    out = []
    for r in (r for r in rows if r["ratio"] == 0.5):
        torch = None if r.get("torch_pruned_ms") is None else \
            f"{r['torch_dense_ms'] / r['torch_pruned_ms']:.2f}x (prune.ln_structured: same shapes, masked)"
        if torch is not None and r.get("torch_removed_ms") is not None:
            torch = f"{r['torch_dense_ms'] / r['torch_removed_ms']:.2f}x (the same smaller model); " + torch
        out.append([f"{r['model']}, {r['ratio']:.0%} of units removed: speedup over the masked model",
                    f"{r['speedup']:.2f}x (FLOP ratio {r['flop_ratio']:.2f})", torch,
                    f"{r['speedup'] / r['flop_ratio']:.2f} of the FLOP ratio"])
    for r in (r for r in rows if r["ratio"] == 0.5 and r["model"].startswith("MLP")):
        theirs = r.get("torch_pruning_removal_ms")
        out.append([f"{r['model']}: removing {r['ratio']:.0%} of the units (a new, smaller model)",
                    f"{r['removal_ms']:.1f} ms (remove_pruned_units; the input model is kept)",
                    None if theirs is None else f"{theirs:.1f} ms (Torch-Pruning, in place; outputs agree to "
                                                f"{r['torch_pruning_max_abs_diff']:.0e})",
                    None if theirs is None else f"TinyTorch {theirs / r['removal_ms']:.1f}x faster"])
    return out


def headline_sparse(rows: list[dict]) -> list[list]:
    best = min((r for r in rows if r["batch"] == 1), key=lambda r: abs(r["sparsity"] - 0.95))
    crossover = best["crossover_scipy"]  # None: CSR was not faster at any measured sparsity
    return [[f"CSR vs dense Linear, batch 1: crossover and speed at {best['sparsity']:.0%} sparsity",
             ("CSR never faster" if crossover is None else f"CSR faster from {crossover:.0%} sparsity")
             + f"; {best['speedup_scipy']:.1f}x at {best['sparsity']:.0%}", None if best.get("torch_dense_ms") is None else
             f"dense F.linear {best['torch_dense_ms']:.3f} ms (pruning keeps PyTorch's weights dense)",
             f"{best['dense_ms'] / best['csr_scipy_ms']:.1f}x vs TinyTorch dense"]]


def headline_save(rows: list[dict]) -> list[list]:
    ours = next(r for r in rows if r["format"].endswith("float32"))
    int8 = next(r for r in rows if r["format"].endswith("int8"))
    dense = next((r for r in rows if r["format"] == "torch.save, dense state_dict"), None)
    xz = next((r for r in rows if "xz" in r["format"]), None)
    return [[f"Saving {ours['weights'] / 1e6:.1f}M weights pruned to 90%: bytes and seconds",
             f"{ours['bytes']:,} B in {ours['save_s']:.1f} s (float32, exact); {int8['bytes']:,} B in "
             f"{int8['save_s']:.1f} s (INT8)",
             None if dense is None else f"{dense['bytes']:,} B in {dense['save_s']:.2f} s (torch.save); "
                                        f"{xz['bytes']:,} B in {xz['save_s']:.0f} s (then xz)",
             None if dense is None else f"float32 file {dense['bytes'] / ours['bytes']:.1f}x smaller than "
                                        f"torch.save, {xz['bytes'] / ours['bytes']:.1f}x smaller than xz"]]


def headline_step(what: str) -> Callable[[list[dict]], list[list]]:
    """The summary line of a training-step benchmark: microseconds per step of each framework."""
    def make(rows: list[dict]) -> list[list]:
        us = {r["framework"]: r["us_per_step"] for r in rows if r["table"] == "training step"}
        ours, theirs = us["tinytorch"], us.get("pytorch")
        return [[f"Training step, {what}", f"{ours:,.0f} us", None if theirs is None else f"{theirs:,.0f} us",
                 None if theirs is None else f"TinyTorch takes {ours / theirs:.2f}x PyTorch's time"]]
    return make


# ----------------------------------------------------------------------------- the plan


def plan(quick: bool, scratch: Path) -> list[tuple[str, str, list[str]]]:
    """(title, benchmark module, argv of its main) for each section, in the order of the report.

    `scratch` is a folder for files a quick run writes (the full run's figures stay).
    """
    q = quick
    steps = ["--repeats", "5", "--steps", "10"] if q else []
    cnn_steps = steps + ["--quick"] if q else []
    return [
        ("Pruning speed and peak memory: TinyTorch vs torch.nn.utils.prune", "bench_prune", ["--quick"] if q else []),
        ("The same pruning pipeline in TinyTorch and PyTorch: accuracy and bytes on the digits", "bench_pipeline",
         ["--quick"] if q else []),
        ("Structured pruning: speed after removing units", "bench_structured", ["--quick"] if q else []),
        ("Sparse vs dense: where CSR starts to pay", "bench_sparse", ["--quick"] if q else []),
        ("Saving a large pruned model: bytes and seconds", "bench_save", ["--quick"] if q else []),
        ("Training step, MLP 64-128-64-10: TinyTorch vs PyTorch", "bench_mlp_step", steps),
        ("Training step, digits CNN: TinyTorch vs PyTorch", "bench_cnn_step", cnn_steps),
        ("Training the digits MLP and CNN: accuracy and time", "bench_digits_train",
         ["--seeds", "0", "--model", "mlp"] if q else []),
        ("Weight sharing and entropy coding: bytes on disk against accuracy", "bench_sharing",
         ["--out", str(scratch / "figures"), "--quick"] if q else ["--out", str(HERE / "figures")]),
        ("The page's questions: lottery tickets, distillation, allocation, low rank", "bench_questions",
         ["--seeds", "0"] if q else []),
        ("The papers on MNIST: Deep Compression, the lottery ticket, structured LeNet-5", "bench_papers",
         ["--out", str(scratch / "figures"), "--quick", "--seeds", "1"] if q else ["--out", str(HERE / "figures")]),
    ]


# How a benchmark's rows become its section (default: `section_rows`) and its summary lines (default: none).
RENDER: dict[str, Callable[[list[dict], str | None], str]] = {
    "bench_prune": section_prune, "bench_pipeline": section_pipeline}
HEADLINE: dict[str, Callable[[list[dict]], list[list]]] = {
    "bench_prune": headline_prune, "bench_pipeline": headline_pipeline, "bench_structured": headline_structured,
    "bench_sparse": headline_sparse, "bench_save": headline_save,
    "bench_mlp_step": headline_step("MLP 64-128-64-10, batch 64, Adam"),
    "bench_cnn_step": headline_step("digits CNN, batch 64, Adam"),
    "bench_papers": lambda rows: importlib.import_module("benchmarks.papers_report").headline(rows)}


# ----------------------------------------------------------------------------- running


@dataclass
class Section:
    """One benchmark's part of the report: its body, its summary lines, and whether it failed."""

    title: str
    command: str
    body: str = ""
    seconds: float = 0.0
    headline: list[list] = field(default_factory=list)
    error: str | None = None


def command(name: str, argv: list[str]) -> str:
    """How to run the benchmark by hand, paths inside the project shown relative to it."""
    def shown(arg: str) -> str:
        path = Path(arg)
        return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else arg
    return " ".join([f"python benchmarks/{name}.py", *map(shown, argv)])


def run_one(title: str, name: str, argv: list[str]) -> Section:
    """Run `benchmarks.<name>.main(argv)` and build its section; an exception makes it a failed section."""
    section = Section(title, command(name, argv))
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = module.main(argv)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError(f"{name}.main must return a list of dicts (its rows), got {type(rows).__name__}")
        section.body = RENDER.get(name, section_rows)(rows, module.__doc__)
        section.headline = HEADLINE[name](rows) if name in HEADLINE else []
    except Exception:  # reported in its section and in the exit code; the other benchmarks still run
        section.error = traceback.format_exc()
        section.body = "**failed:**\n\n" + section_text(section.error)
    section.seconds = time.perf_counter() - start
    return section


def summary(sections: list[Section]) -> str:
    """The headline table of RESULTS.md (and of the README's Results section)."""
    rows = [line for s in sections for line in s.headline]
    failed = [s.title for s in sections if s.error]
    text = table(["measurement", "TinyTorch", "PyTorch", "comparison"], rows) if rows else "(no benchmark ran)"
    if failed:
        text += "\n\n**Failed in this run (see their sections):** " + "; ".join(failed)
    return text


def report(info: dict[str, str], sections: list[Section], quick: bool) -> str:
    """The whole RESULTS.md."""
    lines = ["# Benchmark results", "",
             "Reproduce with `python -m benchmarks` (or `tito bench`) from the project root; a quick check "
             "that every benchmark runs: `python -m benchmarks --quick`." + (
                 " **This report comes from a quick run: small settings, not for comparison.**" if quick else ""),
             "", "Timings within a section come from interleaved rounds where the benchmark allows it; on a "
             "shared or busy machine the absolute times wander, the ratios much less. NumPy's BLAS and "
             "PyTorch run on one thread unless a section says otherwise.", "", "## Machine", "",
             table(["", ""], [[k, v] for k, v in info.items()]), "",
             "## Summary", "", summary(sections), "", "The sections below give every figure and how it was measured.",
             ""]
    for s in sections:
        lines += [f"## {s.title}", "", f"`{s.command}` ({s.seconds:.0f} s in this run)", "", s.body, ""]
    failed = sum(1 for s in sections if s.error)
    if failed:
        lines += [f"**{failed} section(s) failed in this run; see above.**", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark of `plan`, print and write the report; 1 when any benchmark failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings: checks that every benchmark runs")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to write the report (default: {RESULTS.relative_to(ROOT)} for a full run; "
                             "a quick run writes nothing unless given)")
    args = parser.parse_args(argv)
    # NOTE: BLAS reads these when NumPy is first imported, so they are set before that;
    # the benchmarks' own matrices are small, and one thread keeps the load of a shared
    # machine out of the figures.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    info = machine()
    sections = []
    with tempfile.TemporaryDirectory() as scratch:
        for title, name, run_argv in plan(args.quick, Path(scratch)):
            print(f"== {title}", flush=True)
            sections.append(run_one(title, name, run_argv))
            print(sections[-1].body + "\n", flush=True)
    info["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print("== Summary\n" + summary(sections), flush=True)
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        from tinytorch.core.files import write_atomic

        write_atomic(out, report(info, sections, args.quick).encode("utf-8"))
        print(f"wrote {out}")
    return 1 if any(s.error for s in sections) else 0
