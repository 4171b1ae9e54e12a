"""Timing helpers shared by the training-step benchmarks (MLP and CNN, TinyTorch vs PyTorch)."""
from __future__ import annotations

import argparse


def step_parser(description: str) -> argparse.ArgumentParser:
    """The options every training-step benchmark takes: repeats, steps per block, threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=30, help="interleaved blocks per framework")
    parser.add_argument("--steps", type=int, default=50, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1, help="threads for BLAS and PyTorch")
    return parser


def interleaved_timings(steps: dict, repeats: int, block: int, threads: int) -> dict:
    """Each step's `Timing` (seconds per step): Module 14's `time_rounds`, in interleaved blocks of `block` steps.

    `block` untimed rounds warm up caches, allocators and lazily created state first.
    NumPy's BLAS runs on `threads` threads while timing (PyTorch's are set by the caller).
    """
    from tinytorch.profiling import time_rounds

    timings = time_rounds(list(steps.values()), repeats=repeats, warmup=block, number=block, threads=threads)
    return dict(zip(steps, timings))


def timing_row(table: str, name: str, timing) -> dict:
    """A row of the benchmark's results: microseconds per step (median and min) and the spread of the blocks."""
    return {"table": table, "framework": name, "us_per_step": 1e6 * timing.median, "min_us": 1e6 * timing.min,
            "spread": timing.spread, "steady": timing.steady}


def print_timing(name: str, timing, unit: str = "us", scale: float = 1e6) -> None:
    """One line: the median per step, its spread over the blocks, and a flag when they disagree."""
    flag = "" if timing.steady else f"  [!] blocks disagree (spread {timing.spread:.0%})"
    print(f"  {name:10s} {timing.median * scale:8.1f} {unit}/step  (min {timing.min * scale:.1f}, "
          f"spread {timing.spread:.0%}){flag}")
