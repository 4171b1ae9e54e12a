"""Timing helpers shared by the training-step benchmarks (MLP and CNN, TinyTorch vs PyTorch)."""
from __future__ import annotations

import argparse
import os
import statistics
import time


def step_parser(description: str) -> argparse.ArgumentParser:
    """The options every training-step benchmark takes: repeats, steps per block, threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=30, help="interleaved blocks per framework")
    parser.add_argument("--steps", type=int, default=50, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1, help="threads for BLAS and PyTorch")
    return parser


def limit_threads(threads: int) -> None:
    """Set BLAS's thread count; call before NumPy is first imported, which is when BLAS reads it."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def time_block(step, steps: int) -> float:
    """Seconds per step, averaged over one block of `steps` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def interleaved_medians(steps: dict, repeats: int, block: int) -> dict[str, float]:
    """Median seconds per step of each function, timed in interleaved blocks after a warm-up block."""
    for step in steps.values():  # warm up caches, allocators and lazily created state
        time_block(step, block)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(time_block(step, block))
    return {name: statistics.median(t) for name, t in times.items()}
