"""Compression (Module 16): pruning, masks that survive fine-tuning, pruning + INT8, honest sizes.

The code is generated from the lesson, `modules/16_compression/compression_dev.py`, into
`prune.py`, `structured.py`, `iterative.py`, `formats.py`, `storage.py` and `surgery.py`,
and from its given code (`*_given.py` beside the lesson) into `checks.py`, `select.py`,
`reports.py`, `maskbase.py`, `finetune.py`, `sizes.py`, `layerstats.py`, `cutplan.py`,
`deadunits.py`, `encodings.py`, `description.py`, `container.py`, `lab.py` (the lesson's experiments),
`bitstream.py`, `entropy.py` and `sharing.py` (weight sharing and entropy coding), `teacher.py`,
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
from tinytorch.compression.maskbase import MaskBase
from tinytorch.compression.cutplan import Cut, sequential_layers
from tinytorch.compression.surgery import plan_cut, remove_pruned_units
from tinytorch.compression.sizes import LayerSize, SizeReport, gap_code, gap_positions
from tinytorch.compression.formats import format_bytes
from tinytorch.compression.container import MAGIC, CompressedModel, from_bytes, load_compressed, save_compressed, to_bytes
from tinytorch.compression.storage import compressed_size, prune_and_quantize
from tinytorch.compression.entropy import (
    ARITHMETIC,
    GAP_SYMBOLS,
    HUFFMAN,
    MAX_CODE_LENGTH,
    arithmetic_decode,
    arithmetic_encode,
    canonical_codes,
    check_lengths,
    decode_layer_stream,
    encode_layer_stream,
    entropy_bits,
    gap_extra_widths,
    gap_symbols,
    gaps_from_symbols,
    huffman_decode,
    huffman_encode,
    huffman_lengths,
    mask_entropy_bits,
    pack_bits,
    unpack_bits,
)
from tinytorch.compression.sharing import (
    CODEBOOKS,
    MAX_SHARED_WEIGHTS,
    SHARED_LAYERS,
    SharedConv2d,
    SharedLinear,
    centroid_gradients,
    check_codebook,
    decode_shared,
    encode_shared,
    entropy_bound,
    fine_tune_centroids,
    int8_form,
    kmeans_codebook,
    prune_and_share,
    share_weights,
    shared_layer,
    shared_layers,
    with_entropy_bound,
)
from tinytorch.compression.distill import distillation_loss
from tinytorch.compression.teacher import distill
from tinytorch.compression.lowrank import low_rank
from tinytorch.compression.allocation import allocate_sparsity

__all__ = [
    "CompressedModel", "IterativePruner", "LayerSize", "LayerSparsity", "Masks", "SensitivityScan",
    "SizeReport", "SparsityReport", "compressed_size", "drop_dead_units", "fine_tune", "format_bytes", "gap_code",
    "gap_positions", "load_compressed",
    "magnitude_prune", "measure_sparsity", "prunable_layers", "prune_and_quantize", "save_compressed",
    "sensitivity_scan", "smallest_k_masks", "sparsity_report", "sparsity_schedule", "structured_prune",
    "unit_norms", "kth_smallest_magnitude", "plan_cut", "remove_pruned_units", "sequential_layers",
    "SharedConv2d", "SharedLinear", "entropy_bound", "fine_tune_centroids", "kmeans_codebook", "share_weights",
    "allocate_sparsity", "distill", "distillation_loss", "low_rank",
    "Cut", "MaskBase", "MAGIC", "from_bytes", "to_bytes",
    # weight sharing and entropy coding (sharing.py, entropy.py)
    "CODEBOOKS", "MAX_SHARED_WEIGHTS", "SHARED_LAYERS", "centroid_gradients", "check_codebook", "decode_shared",
    "encode_shared", "int8_form", "prune_and_share", "shared_layer", "shared_layers", "with_entropy_bound",
    "ARITHMETIC", "GAP_SYMBOLS", "HUFFMAN", "MAX_CODE_LENGTH", "arithmetic_decode", "arithmetic_encode",
    "canonical_codes", "check_lengths", "decode_layer_stream", "encode_layer_stream", "entropy_bits",
    "gap_extra_widths", "gap_symbols", "gaps_from_symbols", "huffman_decode", "huffman_encode", "huffman_lengths",
    "mask_entropy_bits", "pack_bits", "unpack_bits",
]
