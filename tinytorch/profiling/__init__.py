"""Measuring models (Module 14): parameters, FLOPs (one multiply-add = 2), bytes and latency,
and the one timer every later module uses (interleaved rounds, one BLAS thread, spread, flags)."""
from tinytorch.profiling.profiler import (NOISY_SPREAD, PLAUSIBLE_MARGIN, Setup, Speedup, Timing, blas_threads,
                                          compare_timings, count_flops, count_parameters, flops_by_layer,
                                          format_seconds, layer_flops, measure_latency, model_size_bytes,
                                          time_interleaved, time_rounds)

__all__ = ["NOISY_SPREAD", "PLAUSIBLE_MARGIN", "Setup", "Speedup", "Timing", "blas_threads", "compare_timings",
           "count_flops", "count_parameters", "flops_by_layer", "format_seconds", "layer_flops",
           "measure_latency", "model_size_bytes", "time_interleaved", "time_rounds"]
