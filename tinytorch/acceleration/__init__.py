"""Acceleration (Module 18): the machine's roofline, arithmetic intensity, CSR kernels, layer timing.

The code is generated from the lesson, `modules/18_acceleration/acceleration_dev.py`, into
`roofline.py` and `sparse.py`, and from its given code, `measuring_given.py`, into `backends.py`
and `layers.py`; this file only re-exports the public names.
"""
from tinytorch.acceleration.backends import BACKENDS, SparseChoice, crossover_sparsity, default_backend
from tinytorch.acceleration.roofline import (
    LayerIntensity,
    Roofline,
    attainable_flops,
    layer_bytes,
    layer_intensities,
    matmul_intensity,
    measure_roofline,
)
from tinytorch.acceleration.sparse import SparseLinear, csr_matmul, plan_sparse, to_csr, to_sparse
from tinytorch.acceleration.layers import LayerTime, compare_layer_times

__all__ = [
    "BACKENDS", "LayerIntensity", "LayerTime", "Roofline", "SparseChoice", "SparseLinear", "attainable_flops",
    "compare_layer_times", "crossover_sparsity", "csr_matmul", "default_backend", "layer_bytes",
    "layer_intensities", "matmul_intensity", "measure_roofline", "plan_sparse",
    "to_csr", "to_sparse",
]
