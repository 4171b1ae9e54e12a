"""Benchmarking (Module 19): fair side-by-side comparison of model variants.

Generated from `modules/19_benchmarking/benchmarking_dev.py` into `benchmark.py`; this
file only re-exports its public names, so `from tinytorch.benchmarking import Benchmark`
works.
"""
from tinytorch.benchmarking.benchmark import (
    VARIANTS,
    Benchmark,
    BenchmarkResult,
    BenchmarkRow,
    LatencyStats,
    count_weights,
    interleaved_latency,
    is_compressed,
    latency_stats,
    paired_speedup,
    pareto_front,
    standard_variants,
    storage_bytes,
)

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
