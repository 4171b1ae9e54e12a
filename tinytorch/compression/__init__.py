"""Compression (Module 16): pruning, masks that survive fine-tuning, pruning + INT8, honest sizes.

The code is generated from the lesson, `modules/16_compression/compression_dev.py`, into
`prune.py`, `structured.py`, `iterative.py`, `formats.py`, `storage.py`, `surgery.py` and
`sparse.py`, `distill.py` and `allocation.py`, and from its given code, `storage_given.py`
(`encodings.py`, `container.py`) and `questions_given.py` (`teacher.py`, `lowrank.py`,
`experiments.py`); this file only re-exports the public names.
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
)
from tinytorch.compression.structured import drop_dead_units, structured_prune, unit_norms
from tinytorch.compression.iterative import IterativePruner, fine_tune, sparsity_schedule
from tinytorch.compression.sparse import (
    LayerTime,
    SparseChoice,
    SparseLinear,
    compare_layer_times,
    crossover_sparsity,
    csr_matmul,
    plan_sparse,
    to_csr,
    to_sparse,
)
from tinytorch.profiling import time_interleaved  # kept importable from here too
from tinytorch.compression.surgery import plan_cut, remove_pruned_units, sequential_layers
from tinytorch.compression.formats import LayerSize, SizeReport, format_bytes, gap_code, gap_positions
from tinytorch.compression.container import CompressedModel, load_compressed, save_compressed
from tinytorch.compression.storage import compressed_size, prune_and_quantize
from tinytorch.compression.distill import distillation_loss
from tinytorch.compression.teacher import distill
from tinytorch.compression.lowrank import low_rank
from tinytorch.compression.allocation import allocate_sparsity

__all__ = [
    "CompressedModel", "IterativePruner", "LayerSize", "LayerSparsity", "Masks", "SensitivityScan",
    "SizeReport", "SparsityReport", "compressed_size", "drop_dead_units", "fine_tune", "format_bytes", "gap_code", "gap_positions", "load_compressed",
    "magnitude_prune", "measure_sparsity", "prunable_layers", "prune_and_quantize", "save_compressed",
    "sensitivity_scan", "smallest_k_masks", "sparsity_report", "sparsity_schedule", "structured_prune",
    "unit_norms", "LayerTime", "SparseChoice", "compare_layer_times", "SparseLinear", "crossover_sparsity", "csr_matmul", "plan_sparse",
    "time_interleaved", "to_csr", "to_sparse", "plan_cut", "remove_pruned_units", "sequential_layers",
    "allocate_sparsity", "distill", "distillation_loss", "low_rank",
]
