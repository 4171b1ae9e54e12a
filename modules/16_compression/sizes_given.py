# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Module 16, given code: size reports and the gap code
#
# No task here. `compressed_size` (the lesson, section 7) counts each layer's bytes in
# every format with the formulas the lesson writes (`format_bytes`); this file holds the
# report those counts go into and its printing (`tinytorch/compression/sizes.py`), the
# gap code that stores where the survivors are, and reading a layer's counts from a
# float or an INT8 layer (`tinytorch/compression/layerstats.py`).
#
# The gap code spends one byte per surviving weight: how many zeros come before it. A
# run of 255 or more zeros spends one extra byte (255) per 255 zeros, so the code stays
# one byte wide.

# %%
#| default_exp compression.sizes

# %%
#| export
"""The size report (bytes per format, per layer and in total) and the gap code of survivor positions (given code)."""
from dataclasses import dataclass

import numpy as np


def gap_code(keep: np.ndarray) -> np.ndarray:
    """One byte per non-zero entry of a flat mask: how many zeros come before it.

    A run of 255 or more zeros spends one extra byte (255) per 255 zeros, so the
    code stays one byte wide. Decoding is `gap_positions`.
    """
    gaps = np.diff(np.flatnonzero(keep), prepend=-1) - 1
    counts = gaps // 255 + 1
    code = np.full(int(counts.sum()), 255, np.uint8)
    code[np.cumsum(counts) - 1] = gaps % 255
    return code


def gap_positions(code: np.ndarray, n: int) -> np.ndarray:
    """The flat positions that `gap_code` encoded (for a mask of n entries)."""
    return np.concatenate([np.zeros(0, np.int64), *gap_position_chunks(code, n)])


# %%
#| exporti
_GAP_CHUNK = 1 << 16  # code bytes decoded per step: bounds the temporary arrays


def gap_position_chunks(code: np.ndarray, n: int):
    """The flat positions that `gap_code` encoded (for a mask of n entries), a chunk at a time.

    A code longer than `n` entries can need is refused before any of it is decoded."""
    code = np.asarray(code, np.uint8).reshape(-1)
    if code.size > n + n // 255 + 1:
        raise ValueError(f"gap code of {code.size:,} bytes is longer than a mask of {n:,} entries needs")
    if code.size and code[-1] == 255:
        raise ValueError("gap code ends inside a run")
    last = -1  # the position before the chunk
    for lo in range(0, code.size, _GAP_CHUNK):
        part = code[lo:lo + _GAP_CHUNK].astype(np.int64)
        steps = np.where(part == 255, 255, part + 1)  # an escape moves 255 on, a gap g moves g + 1
        ends = np.cumsum(steps) + last
        positions = ends[part != 255]
        last = int(ends[-1])
        if positions.size and positions[-1] >= n:
            raise ValueError(f"gap code points past the end of {n} entries")
        yield positions


# %%
#| export
@dataclass
class LayerSize:
    """Bytes of one layer's weight and bias in each format."""

    name: str
    params: int
    nonzero: int
    bias_bytes: int
    formats: dict[str, int]

    def total(self, fmt: str) -> int:
        return self.formats[fmt] + self.bias_bytes


@dataclass
class SizeReport:
    """Per-layer bytes per format, other parameters (fp32), and the real file size."""

    layers: list[LayerSize]
    other_bytes: int
    file_bytes: int | None = None
    formats: tuple[str, ...] = ("dense_fp32", "dense_int8", "csr_int8", "bitmask_int8", "gaps_int8")
    # bytes at the entropy bound, in parts and "total" (see `entropy_bound`, sharing_given.py)
    entropy_bound: dict[str, float] | None = None

    def total(self, fmt: str) -> int:
        """The whole model's bytes with every prunable layer stored in `fmt`."""
        if fmt not in self.formats:
            raise ValueError(f"fmt must be one of {', '.join(self.formats)}, got {fmt!r}")
        return sum(layer.total(fmt) for layer in self.layers) + self.other_bytes

    def ratio(self, fmt: str = "file") -> float:
        """How many times smaller than dense fp32 `fmt` (or the real file) is."""
        size = self.file_bytes if fmt == "file" else self.total(fmt)
        return self.total("dense_fp32") / size

    def __str__(self) -> str:
        head = f"{'layer':<10}{'params':>10}{'nonzero':>9}" + "".join(f"{f:>14}" for f in self.formats)
        lines = [head]
        for layer in self.layers:
            lines.append(f"{layer.name:<10}{layer.params:>10,}{layer.nonzero:>9,}"
                         + "".join(f"{layer.total(f):>14,}" for f in self.formats))
        lines.append(f"{'other':<10}{'':>19}" + "".join(f"{self.other_bytes:>14,}" for _ in self.formats))
        lines.append(f"{'total':<10}{'':>19}" + "".join(f"{self.total(f):>14,}" for f in self.formats))
        if self.file_bytes is not None:
            lines.append(f"file written by save_compressed: {self.file_bytes:,} bytes "
                         f"({self.ratio():.1f}x smaller than dense fp32)")
        if self.entropy_bound is not None:
            parts = ", ".join(f"{k} {v:,.0f}" for k, v in self.entropy_bound.items() if not k.startswith("total") and v)
            over = f"; the file is {self.bound_ratio():.2f}x the bound" if self.file_bytes else ""
            lines.append(f"entropy bound: {self.entropy_bound['total']:,.0f} bytes ({parts}){over}")
        return "\n".join(lines)

    def bound_ratio(self) -> float:
        """File bytes / bytes at the entropy bound (1.0 would be a perfect coder)."""
        if self.file_bytes is None or self.entropy_bound is None:
            raise ValueError("bound_ratio needs both file_bytes and entropy_bound")
        return self.file_bytes / self.entropy_bound["total"]


# %%
#| exporti
def index_bytes(limit: int) -> int:
    """Bytes of the smallest unsigned integer type that holds values below `limit` (shared, not in `__all__`)."""
    return 1 if limit <= 2**8 else 2 if limit <= 2**16 else 4


# %%
#| exporti compression.layerstats
"""A layer's weight counts for the size report, and the compacting of INT8 scales and biases (given code)."""
import numpy as np

from tinytorch.compression.sizes import gap_code
from tinytorch.core.layers import Module
from tinytorch.quantization import QuantizedLayer, QuantizedTensor, quantize_int8


def weight_stats(layer: Module) -> tuple[int, int, int, int, int, int, int]:
    """(n, nnz, rows, cols, channels, bias bytes, gap-code escapes) of a float or quantized layer."""
    if isinstance(layer, QuantizedLayer):
        values, channels = layer.qweight.values, layer.qweight.scale.size
        bias = 0 if layer.bias is None else 4 * np.asarray(layer.bias).size
    else:
        values, channels = layer.weight.data, layer.weight.data.shape[0]
        bias = 0 if layer.bias is None else layer.bias.data.nbytes
    rows = values.shape[0]
    nnz = int(np.count_nonzero(values))
    return values.size, nnz, rows, values.size // rows, channels, bias, gap_code(values.reshape(-1) != 0).size - nnz


def compact_layer(layer: Module, weight: np.ndarray, per_channel: bool, int8_bias: bool) -> None:
    """Per-tensor scale for the float `weight` and/or an int8-exact bias, in place on a quantized layer."""
    if not per_channel:
        q = quantize_int8(weight)
        channels = weight.shape[0]
        layer.qweight = QuantizedTensor(q.values, np.full(channels, q.scale, np.float32),
                                        np.zeros(channels, np.int32), axis=0)
    if int8_bias and layer.bias is not None and np.any(layer.bias):
        layer.bias = quantize_int8(layer.bias).dequantize()
