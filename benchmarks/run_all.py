"""Run every benchmark in one go and write `benchmarks/RESULTS.md`: `python -m benchmarks` or `tito bench`.

Each section says what it measures and how; the file starts with the machine, the
versions and the date, because every figure below belongs to them. Timings in one
section are taken in interleaved repeats (A, B, A, B, ...) wherever the benchmark
allows it, so a busy moment of the machine slows both sides alike: the ratios are the
figures to compare across machines, not the absolute times.

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
import time
import traceback
from collections.abc import Callable
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
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"threads set to {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
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


def generic_table(rows: list[dict]) -> str:
    """Rows of a benchmark we know nothing about: one column per key; a missing value reads n/a.

    A value that is itself a list of rows gets a table of its own below, captioned with
    the first three fields of the row it belongs to.
    """
    keys = [k for k in dict.fromkeys(k for row in rows for k in row)
            if not any(_is_table(row.get(k)) for row in rows)]
    missing = {k: NO_TORCH if "torch" in k and _torch_version() is None else "n/a" for k in keys}
    text = table(keys, [[missing[k] if row.get(k) is None else row[k] for k in keys] for row in rows])
    for row in rows:
        for key, value in row.items():
            if _is_table(value):
                about = ", ".join(f"{k} {v}" for k, v in list(row.items())[:3] if not _is_table(v))
                text += f"\n\n{key} ({about}):\n\n" + generic_table(value)
    return text


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def _times(a: float | None, unit: str = "x") -> str | None:
    return None if a is None else f"{a:.2f}{unit}"


# ----------------------------------------------------------------------------- sections


def section_prune(rows: list[dict]) -> str:
    body = table(
        ["method", "TinyTorch s", "torch s", "TinyTorch faster by", "TinyTorch extra memory", "torch extra memory"],
        [[r["method"], f"{r['tinytorch_s']:.3f}", None if r["torch_s"] is None else f"{r['torch_s']:.3f}",
          _times(r["speedup"]), _times(r["tinytorch_extra_x"], "x weights"),
          _times(r["torch_extra_x"], "x weights")] for r in rows])
    return body + ("\n\nThe same 4 x Linear(2048, 2048) weights (16.8M, float32) pruned to 90% by "
                   "`magnitude_prune` (global, scope=\"layer\") and `structured_prune` (L1 rows) against "
                   "`torch.nn.utils.prune` (`global_unstructured` + `L1Unstructured`, `l1_unstructured` per "
                   "layer, `ln_structured(n=1, dim=0)`), then `prune.remove`. Each pruner runs in a fresh "
                   "process; extra memory is the peak resident memory while pruning minus the memory with "
                   "the weights loaded, in units of the weights' own size; times are medians of the runs.")


def section_pipeline(rows: list[dict]) -> str:
    header = ["seed", "TinyTorch dense", "torch dense", "TinyTorch 90%", "torch 90%", "TinyTorch 90% + INT8 (from file)",
              "TinyTorch CPU s", "torch CPU s"]
    body = [[r["seed"], _pct(r["tinytorch_dense"]), _pct(r["torch_dense"]), _pct(r["tinytorch_final"]),
             _pct(r["torch_final"]), _pct(r["tinytorch_int8_accuracy"]), f"{r['tinytorch_cpu_seconds']:.2f}",
             None if r["torch_cpu_seconds"] is None else f"{r['torch_cpu_seconds']:.2f}"] for r in rows]
    if len(rows) > 1:
        def mean(key):
            values = [r[key] for r in rows]
            return None if None in values else sum(values) / len(values)
        body.append(["mean", _pct(mean("tinytorch_dense")), _pct(mean("torch_dense")), _pct(mean("tinytorch_final")),
                     _pct(mean("torch_final")), _pct(mean("tinytorch_int8_accuracy")),
                     f"{mean('tinytorch_cpu_seconds'):.2f}",
                     None if mean("torch_cpu_seconds") is None else f"{mean('torch_cpu_seconds'):.2f}"])
    steps = [[r["seed"], ", ".join(f"{100 * a:.1f}" for a in r["tinytorch_steps"]),
              NO_TORCH if r["torch_steps"] is None else ", ".join(f"{100 * a:.1f}" for a in r["torch_steps"]),
              f"{100 * r['tinytorch_sparsity']:.2f}%",
              None if r["torch_sparsity"] is None else f"{100 * r['torch_sparsity']:.2f}%"] for r in rows]
    return (table(header, body) + "\n\nTest accuracy (360 images) of the MLP 64-128-64-10 after each phase. "
            "Both frameworks start from the same weights, see the same batches in the same order, use the "
            "same Adam settings and prune the same number of weights at each step (see "
            "`benchmarks/bench_pipeline.py`); the INT8 column is TinyTorch's compressed file read back "
            "from disk. Accuracy after each of the pruning steps (%):\n\n"
            + table(["seed", "TinyTorch", "torch", "TinyTorch sparsity", "torch sparsity"], steps))


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


def section_rows(rows: list[dict], doc: str | None) -> str:
    """A benchmark's rows, after the first line and the goal its docstring states."""
    lines = (doc or "").strip().splitlines()
    about = [lines[0]] if lines else []
    about += [line.strip() for line in lines if line.strip().startswith("Goal")]
    return "\n\n".join(about + [generic_table(rows) if rows else "(the benchmark returned no rows)"])


def section_text(text: str) -> str:
    return "```\n" + text.strip() + "\n```"


# ----------------------------------------------------------------------------- running


def load(name: str):
    """The module `benchmarks.<name>`, or None when that benchmark does not exist yet."""
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"benchmarks.{name}":
            return None
        raise


def run_module(name: str, argv: list[str]) -> list[dict] | None:
    """`benchmarks.<name>.main(argv)`, or None when that benchmark does not exist yet."""
    module = load(name)
    return None if module is None else (module.main(argv) or [])


def run_script(name: str, argv: list[str]) -> str:
    """Run `benchmarks/<name>.py` (a benchmark that prints its results) and return what it printed."""
    proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *argv], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}.py exited {proc.returncode}:\n{proc.stderr.strip()}")
    return proc.stdout


def plan(quick: bool, found: dict) -> list[tuple[str, str, Callable[[], str]]]:
    """(title, command, run) of each section, in the order of the report.

    Each run also keeps what its benchmark returned (rows, or printed text) in `found`
    under the benchmark's name, for the summary.
    """
    q = quick

    def prune() -> str:
        found["bench_prune"] = run_module("bench_prune", ["--repeats", "1" if q else "3"])
        return section_prune(found["bench_prune"])

    def pipe() -> str:
        found["bench_pipeline"] = run_module("bench_pipeline", ["--quick"] if q else [])
        return section_pipeline(found["bench_pipeline"])

    def size() -> str:
        return section_bytes(found["bench_pipeline"])

    def optional(name: str, argv: list[str]) -> Callable[[], str]:
        def run() -> str:
            rows = found[name] = run_module(name, argv)
            return "not yet available" if rows is None else section_rows(rows, load(name).__doc__)
        return run

    def script(name: str, argv: list[str]) -> Callable[[], str]:
        def run() -> str:
            found[name] = run_script(name, argv)
            return section_text(found[name])
        return run

    steps = ["--repeats", "5", "--steps", "10"] if q else []
    return [
        ("Pruning speed and peak memory: TinyTorch vs torch.nn.utils.prune", "python benchmarks/bench_prune.py", prune),
        ("The same pruning pipeline in TinyTorch and PyTorch: accuracy on the digits",
         "python benchmarks/bench_pipeline.py", pipe),
        ("Bytes on disk: pruned + INT8 vs a pruned PyTorch state_dict", "python benchmarks/bench_pipeline.py", size),
        ("Structured pruning: speed after removing units", "python benchmarks/bench_structured.py",
         optional("bench_structured", ["--quick"] if q else [])),
        ("Sparse vs dense: where CSR starts to pay", "python benchmarks/bench_sparse.py",
         optional("bench_sparse", ["--quick"] if q else [])),
        ("Saving a large pruned model: bytes and seconds", "python benchmarks/bench_save.py",
         optional("bench_save", ["--quick"] if q else [])),
        ("Training step, MLP 64-128-64-10: TinyTorch vs PyTorch", "python benchmarks/bench_mlp_step.py",
         script("bench_mlp_step", steps)),
        ("Training step, digits CNN: TinyTorch vs PyTorch", "python benchmarks/bench_cnn_step.py",
         script("bench_cnn_step", steps)),
        ("Training the digits MLP and CNN: accuracy and time", "python benchmarks/bench_digits_train.py",
         script("bench_digits_train", ["--seeds", "0", "--model", "mlp"] if q else [])),
        ("Weight sharing and entropy coding: bytes on disk against accuracy",
         "python benchmarks/bench_sharing.py --out benchmarks/figures",
         script("bench_sharing", ["--out", str(HERE / "figures")] + (["--quick"] if q else []))),
        ("The page's questions: lottery tickets, distillation, allocation, low rank",
         "python benchmarks/bench_questions.py", script("bench_questions", ["--seeds", "0"] if q else [])),
    ]


def _summary_rows(found: dict) -> list[list]:
    """The headline figures of each benchmark that ran: (measurement, TinyTorch, PyTorch, comparison)."""
    def prune(r):
        what = {"global": "Global magnitude pruning", "layer": "Layer-wise magnitude pruning",
                "structured": "Structured (L1 rows) pruning"}[r["method"]]
        torch = None if r["torch_s"] is None else f"{r['torch_s']:.3f} s, {r['torch_extra_x']:.1f}x weights extra memory"
        return [f"{what}, 16.8M weights to 90%", f"{r['tinytorch_s']:.3f} s, "
                f"{r['tinytorch_extra_x']:.1f}x weights extra memory", torch,
                None if r["speedup"] is None else f"TinyTorch {r['speedup']:.1f}x faster"]

    def pipeline(rows):
        mean = {k: sum(r[k] for r in rows) / len(rows) if rows[0][k] is not None else None
                for k in ("tinytorch_dense", "tinytorch_final", "tinytorch_int8_accuracy", "torch_dense", "torch_final")}
        torch = None if mean["torch_final"] is None else \
            f"{100 * mean['torch_final']:.1f}% (dense {100 * mean['torch_dense']:.1f}%)"
        return [[f"Digits MLP, same pipeline to 90% sparsity: test accuracy, mean of {len(rows)} seed(s)",
                 f"{100 * mean['tinytorch_final']:.1f}% (dense {100 * mean['tinytorch_dense']:.1f}%; "
                 f"{100 * mean['tinytorch_int8_accuracy']:.1f}% after INT8, read from the file)", torch,
                 None if torch is None else
                 f"{100 * (mean['tinytorch_final'] - mean['torch_final']):+.1f} points"],
                ["Digits MLP at 90%: bytes on disk", f"{rows[0]['tinytorch_int8_bytes']:,} (sparse INT8 file)",
                 None if rows[0]["torch_dense_bytes"] is None else
                 f"{rows[0]['torch_dense_bytes']:,} (torch.save); {rows[0]['torch_csr_bytes']:,} (CSR); "
                 f"{rows[0]['torch_dense_xz_bytes']:,} (xz)",
                 None if rows[0]["torch_dense_bytes"] is None else
                 f"{rows[0]['torch_dense_bytes'] / rows[0]['tinytorch_int8_bytes']:.1f}x smaller than torch.save"]]

    def structured(r):
        torch = None if r.get("torch_pruned_ms") is None else \
            f"{r['torch_dense_ms'] / r['torch_pruned_ms']:.2f}x (prune.ln_structured: same shapes, masked)"
        if torch is not None and r.get("torch_removed_ms") is not None:
            torch = f"{r['torch_dense_ms'] / r['torch_removed_ms']:.2f}x (the same smaller model); " + torch
        return [f"{r['model']}, {r['ratio']:.0%} of units removed: speedup over the masked model",
                f"{r['speedup']:.2f}x (FLOP ratio {r['flop_ratio']:.2f})", torch,
                f"{r['speedup'] / r['flop_ratio']:.2f} of the FLOP ratio"]

    def removal(r):
        theirs = r.get("torch_pruning_removal_ms")
        return [f"{r['model']}: removing {r['ratio']:.0%} of the units (a new, smaller model)",
                f"{r['removal_ms']:.1f} ms (remove_pruned_units; the input model is kept)",
                None if theirs is None else f"{theirs:.1f} ms (Torch-Pruning, in place; outputs agree to "
                                            f"{r['torch_pruning_max_abs_diff']:.0e})",
                None if theirs is None else f"TinyTorch {theirs / r['removal_ms']:.1f}x faster"]

    def sparse(rows):
        one = [r for r in rows if r["batch"] == 1]
        best = min(one, key=lambda r: abs(r["sparsity"] - 0.95))
        return [f"CSR vs dense Linear, batch 1: crossover and speed at {best['sparsity']:.0%} sparsity",
                f"CSR faster from {best['crossover_scipy']:.0%} sparsity; {best['speedup_scipy']:.1f}x at "
                f"{best['sparsity']:.0%}", None if best.get("torch_dense_ms") is None else
                f"dense F.linear {best['torch_dense_ms']:.3f} ms (pruning keeps PyTorch's weights dense)",
                f"{best['dense_ms'] / best['csr_scipy_ms']:.1f}x vs TinyTorch dense"]

    def save(rows):
        ours = next(r for r in rows if r["format"].endswith("float32"))
        int8 = next(r for r in rows if r["format"].endswith("int8"))
        dense = next((r for r in rows if r["format"] == "torch.save, dense state_dict"), None)
        xz = next((r for r in rows if "xz" in r["format"]), None)
        return [f"Saving {ours['weights'] / 1e6:.1f}M weights pruned to 90%: bytes and seconds",
                f"{ours['bytes']:,} B in {ours['save_s']:.1f} s (float32, exact); {int8['bytes']:,} B in "
                f"{int8['save_s']:.1f} s (INT8)",
                None if dense is None else f"{dense['bytes']:,} B in {dense['save_s']:.2f} s (torch.save); "
                                           f"{xz['bytes']:,} B in {xz['save_s']:.0f} s (then xz)",
                None if dense is None else f"float32 file {dense['bytes'] / ours['bytes']:.1f}x smaller than "
                                           f"torch.save, {xz['bytes'] / ours['bytes']:.1f}x smaller than xz"]

    def step(name, what):
        times = {k: re.search(rf"^\s*{k}\s+([\d.]+) us/step", found[name], re.M) for k in ("tinytorch", "pytorch")}
        ours, theirs = (None if m is None else float(m.group(1)) for m in times.values())
        return [f"Training step, {what}", f"{ours:,.0f} us", None if theirs is None else f"{theirs:,.0f} us",
                None if theirs is None else f"TinyTorch takes {ours / theirs:.2f}x PyTorch's time"]

    makers = [("bench_prune", lambda rows: [prune(r) for r in rows]),
              ("bench_pipeline", pipeline),
              ("bench_structured", lambda rows: [structured(r) for r in rows if r["ratio"] == 0.5]),
              ("bench_structured", lambda rows: [removal(r) for r in rows
                                                 if r["ratio"] == 0.5 and r["model"].startswith("MLP")]),
              ("bench_sparse", lambda rows: [sparse(rows)]),
              ("bench_save", lambda rows: [save(rows)]),
              ("bench_mlp_step", lambda _: [step("bench_mlp_step", "MLP 64-128-64-10, batch 64, Adam")]),
              ("bench_cnn_step", lambda _: [step("bench_cnn_step", "digits CNN, batch 64, Adam")])]
    out = []
    for name, make in makers:
        if found.get(name):
            try:
                out += make(found[name])
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass  # a benchmark whose rows changed shape: its own section still shows them
    return out


def summary(found: dict) -> str:
    """The headline table of RESULTS.md (and of the README's Results section)."""
    rows = _summary_rows(found)
    if not rows:
        return "(no benchmark ran)"
    return table(["measurement", "TinyTorch", "PyTorch", "comparison"], rows)


def report(info: dict[str, str], sections: list[tuple[str, str, str, float]], quick: bool, failed: int,
           headline: str = "") -> str:
    """The whole RESULTS.md."""
    lines = ["# Benchmark results", "",
             "Reproduce with `python -m benchmarks` (or `tito bench`) from the project root; a quick check "
             "that every benchmark runs: `python -m benchmarks --quick`." + (
                 " **This report comes from a quick run: small settings, not for comparison.**" if quick else ""),
             "", "Timings within a section come from interleaved repeats where the benchmark allows it; on a "
             "shared or busy machine the absolute times wander, the ratios much less. NumPy's BLAS and "
             "PyTorch run on one thread unless a section says otherwise.", "", "## Machine", "",
             table(["", ""], [[k, v] for k, v in info.items()]), ""]
    if headline:
        lines += ["## Summary", "", headline, "", "The sections below give every figure and how it was measured.", ""]
    for title, command, body, seconds in sections:
        lines += [f"## {title}", "", f"`{command}` ({seconds:.0f} s in this run)", "", body, ""]
    if failed:
        lines += [f"**{failed} section(s) failed in this run; see above.**", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    sections, failed, found = [], 0, {}
    for title, command, run in plan(args.quick, found):
        print(f"== {title}", flush=True)
        start = time.perf_counter()
        try:
            body = run()
        except Exception:  # a benchmark that breaks is reported, and the others still run
            failed += 1
            body = "**failed:**\n\n" + section_text(traceback.format_exc())
        sections.append((title, command, body, time.perf_counter() - start))
        print(body + "\n", flush=True)
    info["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    headline = summary(found)
    print("== Summary\n" + headline, flush=True)
    text = report(info, sections, args.quick, failed, headline)
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
    return 1 if failed else 0
