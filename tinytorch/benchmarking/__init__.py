"""Benchmarking (Module 19): fair side-by-side comparison of model variants.

Generated from `modules/19_benchmarking/benchmarking_dev.py` into three files:
`timing.py` (statistics of repeated timings, interleaved rounds, paired speed-ups),
`benchmark.py` (honest bytes, the Pareto front, the `Benchmark` runner and its table)
and `variants.py` (the standard variants of a trained model); this file only re-exports
their public names, so `from tinytorch.benchmarking import Benchmark` works.
"""
from tinytorch.benchmarking.timing import LatencyStats, interleaved_latency, latency_stats, paired_speedup
from tinytorch.benchmarking.benchmark import (
    Benchmark,
    BenchmarkResult,
    BenchmarkRow,
    count_weights,
    is_compressed,
    pareto_front,
    storage_bytes,
)
from tinytorch.benchmarking.variants import VARIANTS, standard_variants

__all__ = [
    "VARIANTS",
    "Benchmark",
    "BenchmarkResult",
    "BenchmarkRow",
    "LatencyStats",
    "count_weights",
    "interleaved_latency",
    "is_compressed",
    "latency_stats",
    "paired_speedup",
    "pareto_front",
    "standard_variants",
    "storage_bytes",
]
