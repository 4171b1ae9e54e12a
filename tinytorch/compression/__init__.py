"""Compression (Module 16): pruning, masks that survive fine-tuning, pruning + INT8, honest sizes.

The code is generated from the lesson, `modules/16_compression/compression_dev.py`, into
`prune.py`, `structured.py`, `iterative.py`, `formats.py`, `storage.py` and `surgery.py`,
and from its given code (`*_given.py` beside the lesson) into `checks.py`, `select.py`,
`reports.py`, `maskbase.py`, `finetune.py`, `sizes.py`, `layerstats.py`, `cutplan.py`,
`deadunits.py`, `encodings.py`, `description.py`, `container.py`, `lab.py` (the lesson's experiments),
`entropy.py` and `sharing.py` (weight sharing and entropy coding), `teacher.py`,
`lowrank.py` and `experiments.py` (the page's questions); the lesson's section 9 adds
`distill.py` and `allocation.py`; this file only
re-exports the public names. Sparse layers and layer timing are Module 18's
(`tinytorch.acceleration`).
"""
from tinytorch.compression.select import kth_smallest_magnitude
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
from tinytorch.compression.deadunits import drop_dead_units
from tinytorch.compression.structured import structured_prune, unit_norms
from tinytorch.compression.iterative import IterativePruner, fine_tune, sparsity_schedule
from tinytorch.compression.cutplan import sequential_layers
from tinytorch.compression.surgery import plan_cut, remove_pruned_units
from tinytorch.compression.sizes import LayerSize, SizeReport, gap_code, gap_positions
from tinytorch.compression.formats import format_bytes
from tinytorch.compression.container import CompressedModel, load_compressed, save_compressed
from tinytorch.compression.storage import compressed_size, prune_and_quantize
from tinytorch.compression.sharing import (
    SharedConv2d,
    SharedLinear,
    entropy_bound,
    fine_tune_centroids,
    kmeans_codebook,
    share_weights,
)
from tinytorch.compression.distill import distillation_loss
from tinytorch.compression.teacher import distill
from tinytorch.compression.lowrank import low_rank
from tinytorch.compression.allocation import allocate_sparsity

__all__ = [
    "CompressedModel", "IterativePruner", "LayerSize", "LayerSparsity", "Masks", "SensitivityScan",
    "SizeReport", "SparsityReport", "compressed_size", "drop_dead_units", "fine_tune", "format_bytes", "gap_code", "gap_positions", "load_compressed",
    "magnitude_prune", "measure_sparsity", "prunable_layers", "prune_and_quantize", "save_compressed",
    "sensitivity_scan", "smallest_k_masks", "sparsity_report", "sparsity_schedule", "structured_prune",
    "unit_norms", "kth_smallest_magnitude", "plan_cut", "remove_pruned_units", "sequential_layers",
    "SharedConv2d", "SharedLinear", "entropy_bound", "fine_tune_centroids", "kmeans_codebook", "share_weights",
    "allocate_sparsity", "distill", "distillation_loss", "low_rank",
]
