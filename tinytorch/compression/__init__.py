"""Compression (Module 16): pruning, masks that survive fine-tuning, pruning + INT8, honest sizes.

The code is generated from `modules/16_compression/compression_dev.py` into `prune.py`,
`iterative.py` and `storage.py`; this file only re-exports the public names.
"""
from tinytorch.compression.prune import (
    LayerSparsity,
    Masks,
    SensitivityScan,
    SparsityReport,
    magnitude_prune,
    measure_sparsity,
    prunable_layers,
    sensitivity_scan,
    smallest_k_masks,
    sparsity_report,
    structured_prune,
    unit_norms,
)
from tinytorch.compression.iterative import IterativePruner, fine_tune, sparsity_schedule
from tinytorch.compression.storage import (
    CompressedModel,
    LayerSize,
    SizeReport,
    compressed_size,
    format_bytes,
    load_compressed,
    prune_and_quantize,
    save_compressed,
)

__all__ = [
    "CompressedModel", "IterativePruner", "LayerSize", "LayerSparsity", "Masks", "SensitivityScan",
    "SizeReport", "SparsityReport", "compressed_size", "fine_tune", "format_bytes", "load_compressed",
    "magnitude_prune", "measure_sparsity", "prunable_layers", "prune_and_quantize", "save_compressed",
    "sensitivity_scan", "smallest_k_masks", "sparsity_report", "sparsity_schedule", "structured_prune",
    "unit_norms",
]
