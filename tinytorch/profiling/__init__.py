"""Measuring models (Module 14): parameters, FLOPs (one multiply-add = 2), bytes and latency."""
from tinytorch.profiling.profiler import (count_flops, count_parameters, flops_by_layer, layer_flops,
                                          measure_latency, model_size_bytes, time_interleaved)

__all__ = ["count_flops", "count_parameters", "flops_by_layer", "layer_flops", "measure_latency",
           "model_size_bytes", "time_interleaved"]
