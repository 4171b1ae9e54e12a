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
# # Module 16, given code: the compressed file
#
# This file is part of Module 16 but holds no task: it is the plumbing behind
# `save_compressed` and `load_compressed`, which the lesson uses and measures but need
# not teach. Read it if you want to know how a sparse INT8 model becomes bytes; skip it
# otherwise. `tito export 16` exports it with the lesson:
#
# - `tinytorch/compression/encodings.py`: one layer's weights and bias as arrays
#   (dense, bitmask, gap-coded or CSR positions; int8 or exact float32 values).
# - `tinytorch/compression/container.py`: the file itself (magic, version, codec,
#   checksum, the description of the layers and the raw arrays), written atomically,
#   and `CompressedModel`, the `Module` that wraps a compressed network. The description
#   itself (the layer tree, checked, in a compact binary form) is `description_given.py`'s.

# %%
#| default_exp compression.container

# %%
#| export compression.encodings
"""One layer's weights and bias as arrays in a file: dense, bitmask, gap-coded or CSR positions; int8 or exact float32 values (given code)."""
import math

import numpy as np

from tinytorch.compression.formats import format_bytes
from tinytorch.compression.sizes import gap_code, gap_position_chunks, index_bytes
from tinytorch.quantization import QuantizedTensor, quantize_int8

# %% [markdown]
# ### The file format
#
# `save_compressed` writes one file: a fixed header of 23 bytes (magic and version,
# codec, a BLAKE2b checksum of the payload), then the compressed payload: a description
# of the layers (`description_given.py`) and the raw bytes of every array, one after the
# other. Loading never unpickles anything, and believes nothing a file claims before checking it: it reads
# the magic before the rest; it decompresses the payload as a stream, no further than
# the description's arrays add up to and no more than 64 times the compressed bytes
# (or 64 MiB); it compares the checksum before building any layer; and it checks every
# array index, dtype, shape and layer argument against the arrays really there. A
# model's sparse layers may stand for at most 256 weights per byte of the file, so a
# few bytes cannot claim a 20000 x 20000 layer. A truncated, foreign, tampered or
# crafted file is refused with a ValueError that says what is wrong, having cost a few MiB.
#
# A model's mode is part of it: BatchNorm and Dropout compute differently in training
# mode. Since format version 4 the description records every module's `training` flag
# (one flag when they all agree, the usual case) and the model loads in the modes it was
# saved in. Files of versions 1-3 recorded no mode; they load in eval mode, the mode a
# stored model is used in.

# **One budget per file.** A file whose payload is compressed to S bytes may cost the
# reader at most B = 64 MiB + 64 x S bytes. The payload is decompressed no further than B;
# the layers built from it share what is left of B, charged before anything is allocated
# or decoded: the decoded description at 128 bytes per byte (so it is at most B / 128),
# each layer at 1 KiB (its objects and its building), every use of an array at its size (twenty layers naming one array pay
# twenty times), what loading builds from it (the dense weight behind a sparse index and
# its mask, scales spread over channels, zero points, an int8 bias in float32, a shared
# layer's dense float32 weight), and each entropy-coded position as work: 48 bytes for
# Huffman (its arrays), 1 KiB for the arithmetic coder (about 16 microseconds of Python
# each; a writer codes at most 32,768 positions of a file so). Each decoder also checks a
# declared count against the bytes left before decoding, and decodes in bounded chunks.
# So loading a file takes at most about 2B of memory and, in decoding, about a second per
# 64 MiB of B; a file that would exceed B is refused, and `save_compressed` refuses a
# model whose file could not pay for it (a huge layer pruned to almost nothing).
# Convolution padding is below the kernel size (pooling: at most half of it), so a
# forward pass of a loaded model pads its input by less than its kernels.
#
# INT8 layers are stored as above. A float layer keeps every float32 value exactly, but
# it too leaves its zeros out when that is smaller: dense, a bitmask plus the non-zero
# values, or gap-coded positions plus the values, whichever takes fewest bytes (since format
# version 2; files of version 1, which stored float weights dense, still load). Storing
# 16.8M pruned float weights dense and leaving the zeros to the compressor took over a
# minute and 9.4 MB; leaving them out takes about a second and 6.3 MB
# (`benchmarks/bench_save.py`). For payloads over 1 MiB the compressors run at a fast
# setting: their best setting takes about 0.5 s per MB for a few percent.

# %% nbgrader={"grade": false, "grade_id": "save-load", "solution": false}
#| exporti compression.encodings
class Payload:
    """Arrays appended to one byte buffer, each described as `[dtype, *shape]` in `arrays`."""

    def __init__(self, packed: bool = True):
        self.packed = packed  # False: no gap or CSR indexes, which claim the most per byte (see to_bytes)
        self.parts: list[bytes] = []
        self.arrays: list[dict] = []
        self.size = 0
        self.claimed = 0  # weights that sparse encodings stand for (see DENSITY)
        self.cost = 0  # bytes a reader charges to the file's budget (see StoredArrays.charge)
        self.arithmetic = 0  # positions coded with the arithmetic coder (see ARITHMETIC_FILE_MAX)

    def add(self, a: np.ndarray) -> int:
        a = np.asarray(a)
        if not a.flags.c_contiguous:  # NOTE: not ascontiguousarray: it turns a 0-d array into 1-d
            a = a.copy(order="C")
        self.arrays.append([a.dtype.name, *a.shape])  # offsets follow from the order
        self.parts.append(a.tobytes())
        self.size += a.nbytes
        self.cost += a.nbytes  # a reader charges every use of an array; each is used once
        return len(self.arrays) - 1


def encode_weights(q: QuantizedTensor, payload: Payload) -> dict:
    """Store int8 values as dense, bitmask or CSR: whichever is fewest bytes."""
    values = q.values
    rows = values.shape[0]
    flat = values.reshape(rows, -1)
    nz = flat != 0
    nnz = int(np.count_nonzero(nz))
    gaps = gap_code(nz.reshape(-1))
    sizes = format_bytes(values.size, nnz, rows, flat.shape[1], q.scale.size, gaps.size - nnz)
    uniform = q.scale.size > 1 and bool(np.all(q.scale == q.scale.flat[0]))
    spec = {"shape": list(values.shape), "scale": payload.add(q.scale.reshape(-1)[:1] if uniform else q.scale)}
    if q.axis != 0:
        spec["axis"] = q.axis
    if uniform:  # a per-tensor scale spread over channels: store it once
        spec["channels"] = q.scale.size
    if np.any(q.zero_point != 0):
        spec["zero_point"] = payload.add(q.zero_point.astype(np.int32))
    payload.cost += _scale_cost(q.scale.size, uniform, "zero_point" in spec)
    kinds = ("dense_int8", "csr_int8", "bitmask_int8", "gaps_int8") if payload.packed else ("dense_int8", "bitmask_int8")
    best = _smallest(values.size, {k: sizes[k] for k in kinds})
    return spec | _store_values(best.removesuffix("_int8"), values, nz, gaps, payload)


# NOTE: a gap code or a CSR index leaves out a final run of zeros, so a few bytes could
# claim any shape. The sparse layers of a file may stand for at most DENSITY weights
# per byte of the file (plus SLACK, for files written before the rule), and the writer
# never exceeds it: a layer sparser than that is stored as a bitmask (8 weights per
# byte) instead, and a payload that compresses too well for it is stored less packed.
DENSITY = 256
SLACK = 1 << 20


def _scale_cost(rows: int, spread: bool, zero_point: bool) -> int:
    """Bytes a reader builds for an int8 weight's scales: the one stored scale spread over
    `rows`, and zero points when none are stored."""
    return 4 * rows * spread + 4 * rows * (not zero_point)


def _smallest(n: int, sizes: dict[str, int]) -> str:
    """The encoding of fewest bytes among those that stay within `DENSITY` weights per byte."""
    fair = {k: v for k, v in sizes.items() if n <= DENSITY * v or not k.startswith(("gaps", "csr"))}
    return min(fair, key=fair.__getitem__)


def _store_values(encoding: str, values: np.ndarray, nz: np.ndarray, gaps: np.ndarray, payload: Payload) -> dict:
    """`values` added to `payload` in `encoding` ("dense", "gaps", "bitmask" or "csr"); `_stored_values` reads it.

    `nz` marks the non-zeros of `values` viewed as rows x (the rest); `gaps` is their gap code.
    """
    if encoding == "dense":
        return {"encoding": "dense", "values": payload.add(values)}
    payload.claimed += values.size
    payload.cost += values.size * (values.itemsize + 1)  # the dense array and its mask
    flat = values.reshape(nz.shape)
    if encoding == "gaps":
        index = {"gaps": payload.add(gaps)}
    elif encoding == "bitmask":
        index = {"bits": payload.add(np.packbits(nz.reshape(-1)))}
    else:
        dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}[index_bytes(flat.shape[1])]
        starts = np.concatenate([[0], np.cumsum(np.count_nonzero(nz, axis=1))]).astype(np.uint32)
        index = {"starts": payload.add(starts), "columns": payload.add(np.nonzero(nz)[1].astype(dtype))}
    return {"encoding": encoding} | index | {"values": payload.add(flat[nz])}


class StoredArrays(list):
    """The arrays of a file being read: an index must name one of them, the dense arrays
    built from them stay within what the file can stand for (`allow`), and everything the
    loader holds for them within the file's budget of bytes (`charge`)."""

    def __init__(self, arrays, budget: int, memory: int):
        super().__init__(arrays)
        self.budget = budget  # weights that sparse encodings may still expand to
        self.memory = memory  # bytes the layers built from the file may still hold

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            raise ValueError(f"array index {index!r} is not one of the file's {len(self)} arrays")
        array = super().__getitem__(index)
        # NOTE: every use is charged: twenty layers naming one array hold twenty of it.
        self.charge(array.nbytes, f"array {index} ({array.dtype} {list(array.shape)})")
        return array

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.memory:
            raise ValueError(f"{what} needs {nbytes:,} bytes, more than the file's budget has left "
                             f"({self.memory:,} of 64 MiB + 64 bytes per byte of the file); "
                             "refused before allocating them")
        self.memory -= nbytes

    def allow(self, n: int, what: str) -> None:
        if n > self.budget:
            raise ValueError(f"{what} claims {n:,} weights, more than a file of this size may stand for "
                             f"({self.budget:,} left, at 256 per byte); refused before allocating them")
        self.budget -= n


def _allow(arrays: list, n: int, what: str, nbytes: int = 0) -> None:
    """Charge `n` weights and `nbytes` bytes to a file's budgets (plain lists, in tests, have none)."""
    if isinstance(arrays, StoredArrays):
        arrays.allow(n, what)
        arrays.charge(nbytes, what)


def _checked_shape(shape, ndim: tuple[int, ...], what: str) -> tuple[int, ...]:
    """A stored shape: a list of `ndim` integers >= 1 (`ndim` lists the numbers allowed)."""
    if not isinstance(shape, list) or len(shape) not in ndim \
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"{what} must have a shape of {' or '.join(map(str, ndim))} integers >= 1, got {shape!r}")
    return tuple(shape)


def _stored_values(spec: dict, arrays: list[np.ndarray], dtype) -> np.ndarray:
    """The dense array of `spec["shape"]` that a weight spec (dense, bitmask, gaps or CSR) describes."""
    shape = _checked_shape(spec["shape"], (1, 2, 3, 4), "a stored weight")
    rows, cols = shape[0], math.prod(shape[1:])
    kind, kept = spec["encoding"], arrays[spec["values"]]
    if kept.dtype != dtype or kept.ndim != 1 and kind != "dense":
        raise ValueError(f"a {kind} weight stores its values as {kept.dtype} {kept.shape}, "
                         f"expected 1-D {np.dtype(dtype)}")
    if kind == "dense":
        if kept.size != rows * cols:
            raise ValueError("compressed file's values do not match their shape")
        return kept.reshape(shape)
    if kind not in ("bitmask", "gaps", "csr"):
        raise ValueError(f"unknown weight encoding {kind!r} in compressed file")
    # NOTE: a sparse index is small however large the shape it claims: charge the dense
    # array to the file's budget before allocating it.
    _allow(arrays, rows * cols, f"a {kind} weight of shape {list(shape)}", rows * cols * (np.dtype(dtype).itemsize + 1))
    if kind == "bitmask":
        bits = arrays[spec["bits"]]
        if bits.dtype != np.uint8 or bits.shape != ((rows * cols + 7) // 8,):
            raise ValueError(f"the bitmask of a weight of shape {list(shape)} must be {(rows * cols + 7) // 8} "
                             f"uint8 bytes, got {bits.dtype} {bits.shape}")
        mask = np.unpackbits(bits, count=rows * cols).astype(bool).reshape(rows, cols)
    elif kind == "gaps":
        code = arrays[spec["gaps"]]
        if code.dtype != np.uint8 or code.ndim != 1:
            raise ValueError(f"a gap code must be 1-D uint8, got {code.dtype} {code.shape}")
        mask = np.zeros(rows * cols, bool)
        for positions in gap_position_chunks(code, rows * cols):
            mask[positions] = True
        mask = mask.reshape(rows, cols)
    else:
        starts, columns = arrays[spec["starts"]].astype(np.int64), arrays[spec["columns"]].astype(np.int64)
        if starts.shape != (rows + 1,) or starts[0] != 0 or np.any(np.diff(starts) < 0) \
                or starts[-1] != columns.size or (columns.size and columns.max() >= cols):
            raise ValueError("corrupt CSR index in compressed file")
        mask = np.zeros((rows, cols), bool)
        mask[np.repeat(np.arange(rows), np.diff(starts)), columns] = True
    if kept.size != np.count_nonzero(mask):
        raise ValueError("compressed file's values do not match its index")
    dense = np.zeros((rows, cols), dtype)
    dense[mask] = kept
    return dense.reshape(shape)


def encode_float(weight: np.ndarray, payload: Payload) -> int | dict:
    """A float32 weight, value for value: dense, or its non-zeros with bitmask or gap-coded
    positions, whichever takes fewest bytes. A -0.0 comes back as 0.0, the same number.

    Returns the index of the dense array in `payload` (as format version 1 stored every
    float weight), or the spec of a sparse encoding.
    """
    weight = np.asarray(weight, np.float32)
    nz = weight.reshape(weight.shape[0], -1) != 0
    nnz = int(np.count_nonzero(nz))
    gaps = gap_code(nz.reshape(-1))
    sizes = {"dense": 4 * weight.size, "bitmask": (weight.size + 7) // 8 + 4 * nnz}
    if payload.packed:
        sizes["gaps"] = gaps.size + 4 * nnz
    best = _smallest(weight.size, sizes)
    if best == "dense":
        return payload.add(weight)
    return {"shape": list(weight.shape)} | _store_values(best, weight, nz, gaps, payload)


def decode_float(stored: int | dict, arrays: list[np.ndarray], ndim: tuple[int, ...] = (1, 2, 3, 4)) -> np.ndarray:
    """The float32 weight that `encode_float` stored (of `ndim` dimensions)."""
    if isinstance(stored, dict):  # _stored_values checks the dtype
        return _stored_values(stored, arrays, np.float32)
    weight = arrays[stored]
    if weight.dtype != np.float32:
        raise ValueError("compressed file stores a float weight as another dtype")
    _checked_shape(list(weight.shape), ndim, "a float weight")
    return weight


def decode_weights(spec: dict, arrays: list[np.ndarray]) -> QuantizedTensor:
    values = _stored_values(spec, arrays, np.int8)
    rows = values.shape[0]
    scale = arrays[spec["scale"]]
    if scale.dtype != np.float32 or scale.shape not in ((rows,), (1,)):
        raise ValueError(f"the scales of an int8 weight of {rows} rows must be float32 of shape ({rows},) "
                         f"or (1,), got {scale.dtype} {scale.shape}")
    if "channels" in spec:  # one scale stored for every channel
        if spec["channels"] != rows or scale.shape != (1,):
            raise ValueError(f"an int8 weight of {rows} rows shares one scale over {spec['channels']!r} channels")
    spread = "channels" in spec
    _allow(arrays, 0, f"the scales of an int8 weight of {rows:,} rows",
           _scale_cost(rows if spread else scale.size, spread, "zero_point" in spec))
    if "channels" in spec:
        scale = np.full(rows, scale[0], np.float32)
    zero_point = arrays[spec["zero_point"]] if "zero_point" in spec else np.zeros(scale.shape, np.int32)
    if zero_point.dtype != np.int32:
        raise ValueError(f"zero points must be int32, got {zero_point.dtype}")
    return QuantizedTensor(values, scale, zero_point, spec.get("axis", 0))


def encode_bias(bias: np.ndarray | None, payload: Payload) -> dict | None:
    """A float32 bias, stored as int8 + one scale when that is exact (see `prune_and_quantize`)."""
    if bias is None:
        return None
    bias = np.asarray(bias, np.float32)
    if bias.size and np.any(bias) and np.all(np.isfinite(bias)):
        q = quantize_int8(bias)
        if np.array_equal(q.dequantize(), bias):
            payload.cost += 4 * bias.size  # the float32 bias a reader rebuilds
            return {"int8": payload.add(q.values), "scale": payload.add(q.scale.reshape(1))}
    return {"float32": payload.add(bias)}


def decode_bias(spec: dict | None, arrays: list[np.ndarray]) -> np.ndarray | None:
    if spec is None:
        return None
    bias = arrays[spec["float32"]] if "float32" in spec else arrays[spec["int8"]]
    if bias.dtype != (np.float32 if "float32" in spec else np.int8) or bias.ndim != 1:
        raise ValueError(f"a bias must be 1-D float32 or int8, got {bias.dtype} {bias.shape}")
    if "float32" in spec:
        return bias
    scale = arrays[spec["scale"]]
    if scale.dtype != np.float32 or scale.shape != (1,):
        raise ValueError(f"an int8 bias needs one float32 scale, got {scale.dtype} {scale.shape}")
    _allow(arrays, 0, f"an int8 bias of {bias.size:,} values", 4 * bias.size)
    return QuantizedTensor(bias, scale[0]).dequantize()


# %%
#| export compression.container
"""The compressed file: header, checksum, bounded decompression, layer description and arrays; CompressedModel (given code)."""
import hashlib
import io
import json
import lzma
import math
import os
import stat
import zlib

import numpy as np

from tinytorch.compression.description import decode_tree, describe, encode_tree, rebuild
from tinytorch.compression.encodings import DENSITY, SLACK, Payload, StoredArrays
from tinytorch.compression.entropy import varint
from tinytorch.compression.sizes import SizeReport
from tinytorch.compression.checks import check_model as _check
from tinytorch.core.files import write_atomic
from tinytorch.core.layers import Module

# Version 4 adds the modules' mode (eval or training) to version 3's binary layer
# description (description.py); version 2 wrote the description as JSON text; version 1
# also stored every float weight dense. All four are read; files before version 4 hold
# no mode and load in eval mode.
MAGIC = b"TTZIP\x04"
_READS = (1, 2, 3, 4)
# NOTE: raw LZMA2 skips the 60-byte .xz container; lc=lp=pb=0 because int8 values and
# gap bytes carry little context from their neighbours (measured: ~8% smaller here).
# The extreme preset takes about 0.5 s per MB for a few percent: bodies over _BIG get
# the fastest presets (17M pruned float weights: 4 s -> 0.9 s, 3% more bytes).
_BIG = 1 << 20


def _lzma_filters(preset: int) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": preset, "lc": 0, "lp": 0, "pb": 0}]


def _lzma_pack(body: bytes) -> bytes:
    preset = 9 | lzma.PRESET_EXTREME if len(body) <= _BIG else 0
    return lzma.compress(body, lzma.FORMAT_RAW, filters=_lzma_filters(preset))


_CODECS = {0: ("none", lambda b: b, lambda b: b),
           1: ("zlib", lambda b: zlib.compress(b, 9 if len(b) <= _BIG else 6), zlib.decompress),
           # any preset's stream decodes with the largest dictionary (preset 9's)
           2: ("lzma", _lzma_pack, lambda b: lzma.decompress(b, lzma.FORMAT_RAW, filters=_lzma_filters(9)))}
_DTYPES = {"int8", "uint8", "uint16", "uint32", "int32", "float32"}


# %%
#| exporti compression.container
# A model's mode travels with it: `.ttz` files (version 4) and safetensors metadata store it this way.
def _listed(module: Module) -> list[Module]:
    """`module` and every module inside it, depth first; a module reached twice is listed twice."""
    return [module] + [m for child in module.children() for m in _listed(child)]


def module_modes(root: Module) -> bool | list[bool]:
    """Every module's `training` flag (`_listed` order): one bool when they all agree (the usual case), else a list."""
    flags = [m.training for m in _listed(root)]
    return flags[0] if len(set(flags)) == 1 else flags


def set_module_modes(root: Module, stored) -> Module:
    """`root` with the modes `module_modes` gave: checked first, then set; returns `root`.

    Raises:
        ValueError: `stored` is not a bool, nor a list of one bool per module of `root`.
    """
    if isinstance(stored, bool):
        return root.train(stored)
    modules = _listed(root)
    if not (isinstance(stored, list) and len(stored) == len(modules) and all(isinstance(b, bool) for b in stored)):
        raise ValueError(f"the stored modes must be true/false, or a list of one per module ({len(modules)}), "
                         f"got {str(stored)[:60]}")
    for module, flag in zip(modules, stored):
        module.training = flag
    return root


# %% nbgrader={"grade": false, "grade_id": "file-io", "solution": false}
#| export compression.container
_HEADER = len(MAGIC) + 1 + 16  # magic, codec id, BLAKE2b-128 of the uncompressed payload
# NOTE: limits on what a file may claim, checked before anything of that size exists.
# A payload may expand to _FLOOR bytes, or _RATIO times the compressed bytes beyond
# that (the writer picks a weaker codec rather than exceed it); the layers built from it
# get what the payload leaves of that budget (StoredArrays.charge); its description is at
# most _MAX_DESCRIPTION bytes (JSON) or _MAX_BINARY_DESCRIPTION. A file that is not a
# regular file (a pipe, a device) has no size to measure, so it gets _FLOOR.
_FLOOR = 64 << 20
_RATIO = 64
_MAX_DESCRIPTION = 16 << 20
_MAX_BINARY_DESCRIPTION = 1 << 20  # a layer takes 3-40 bytes: room for 25,000 layers and more
# NOTE: decoded, a description's maps and lists take up to ~100 bytes of Python objects per
# byte (a 3-byte {"type": "ReLU"} is a 232-byte dict): each byte is charged this much of the
# budget, so a description may be at most a 128th of it (512 KiB for the 64 MiB floor).
_DESCRIPTION_COST = 128
_CHUNK = 1 << 20


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def _max_body(packed: int | None) -> int:
    """The most bytes a payload compressed to `packed` bytes may expand to."""
    return _FLOOR if packed is None else max(_FLOOR, _RATIO * packed)


def _budget(packed: int | None) -> int:
    """The bytes a file whose payload is compressed to `packed` bytes may cost its reader:
    64 MiB + 64 per byte (the payload, its description, and every layer built from it)."""
    return _FLOOR + (0 if packed is None else _RATIO * packed)


def _lzma_window(packed: int | None) -> int:
    """The LZMA dictionary a reader allocates for a payload compressed to `packed` bytes.

    NOTE: an LZMA decoder allocates its whole dictionary up front: 64 MiB for the
    preset-9 dictionary, whatever the file. No match reaches further back than the
    payload is long, so a dictionary of the payload's size decodes it; the writer only
    picks LZMA when the payload fits the window this function gives its compressed size.
    """
    if packed is None:
        return 1 << 26
    return min(1 << 26, max(1 << 20, 1 << (16 * packed - 1).bit_length()))


def to_bytes(model: Module) -> bytes:
    """The exact bytes `save_compressed(model, path)` writes."""
    root = _check(model)
    while isinstance(root, CompressedModel):
        root = root.model
    # NOTE: a huge layer pruned to almost nothing costs the reader more (its dense weight)
    # than a gap-coded file of its few survivors may ask for; such a model is stored again
    # with bitmasks (8 weights a byte), whose file always pays for what it builds, and
    # without arithmetic coding (1 KiB of budget a position).
    for packed in (True, False):
        payload = Payload(packed)
        description = encode_tree({"model": describe(root, payload), "arrays": payload.arrays,
                                   "training": module_modes(root)})
        body = varint(len(description)) + description + b"".join(payload.parts)
        need = len(body) + payload.cost + _DESCRIPTION_COST * len(description)  # what a reader charges
        # NOTE: which codec wins depends on the model; measure both, keep the smaller
        # (among those a reader accepts: "none" almost always is).
        fair = [(c, p) for c, p in ((cid, pack(body)) for cid, (_, pack, _) in _CODECS.items())
                if len(body) <= (_lzma_window(len(p)) if c == 2 else _max_body(len(p)))
                and payload.claimed <= DENSITY * len(p) + SLACK and need <= _budget(len(p))]
        if fair:
            codec, packed_body = min(fair, key=lambda c: len(c[1]))
            return MAGIC + bytes([codec]) + _digest(body) + packed_body
    raise ValueError(f"the model's file of {len(body):,} bytes would stand for {payload.claimed:,} sparse weights "
                     f"(at most {DENSITY * len(body) + SLACK:,}) and need {need:,} bytes to load (at most "
                     f"{_budget(len(body)):,}): its shared layers are too sparse for their size; prune them "
                     "less, or store them unshared")


class _Reader:
    """The payload of a file, decompressed as it is read, never beyond what it may hold."""

    def __init__(self, f, codec: int, packed: int | None, source: str):
        self.f, self.source, self.limit = f, source, _max_body(packed)
        self.hash = hashlib.blake2b(digest_size=16)
        self.count = 0  # payload bytes read so far
        self.consumed = 0  # compressed bytes read so far
        self.kind = _CODECS[codec][0]
        self.inflate = (zlib.decompressobj() if self.kind == "zlib" else None if self.kind == "none" else
                        lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
                            {"id": lzma.FILTER_LZMA2, "dict_size": _lzma_window(packed)}]))

    def _corrupt(self, why: str) -> ValueError:
        return ValueError(f"{self.source} is truncated or corrupt ({self.kind}: {why})")

    def _packed(self) -> bytes:
        """The next compressed bytes of the file (no more than any payload it may hold needs)."""
        chunk = self.f.read(_CHUNK)
        self.consumed += len(chunk)
        if self.consumed > 2 * self.limit + _CHUNK:  # an endless pipe of empty blocks ends here
            raise self._corrupt(f"more than {self.consumed:,} compressed bytes")
        return chunk

    def _step(self, want: int) -> bytes:
        """Up to `want` more bytes of the payload (b"" only at its end)."""
        if self.inflate is None:
            data = self.f.read(want)
            self.consumed += len(data)
            return data
        d = self.inflate
        while not d.eof:
            if self.kind == "zlib":
                fresh = d.unconsumed_tail or self._packed()
            else:
                fresh = self._packed() if d.needs_input else b""
            try:
                out = d.decompress(fresh, want)
            except (zlib.error, lzma.LZMAError, EOFError) as err:
                raise self._corrupt(str(err)) from None
            if out:
                return out
            if not fresh and (self.kind == "zlib" or d.needs_input):
                raise self._corrupt("the stream ends early")
        return b""

    def read(self, n: int) -> bytearray:
        """Exactly `n` bytes of the payload, added to the checksum."""
        out = bytearray(n)  # n was checked against self.limit: allocate once, fill in place
        view, done = memoryview(out), 0
        while done < n:
            piece = self._step(min(n - done, _CHUNK))
            if not piece:
                raise ValueError(f"{self.source} is truncated or corrupt: its payload ends early")
            view[done:done + len(piece)] = piece
            done += len(piece)
        self.hash.update(out)
        self.count += n
        return out

    def finish(self) -> None:
        """Refuse anything after the payload the description accounts for."""
        extra = self._step(1)
        leftover = self.inflate is not None and (getattr(self.inflate, "unused_data", b"") or
                                                  getattr(self.inflate, "unconsumed_tail", b""))
        if extra or leftover or self.f.read(1):
            raise ValueError(f"{self.source} has bytes after the payload its description accounts for")


def _array_table(meta) -> list[tuple[str, tuple[int, ...]]]:
    """The (dtype, shape) of every array a description lists, checked."""
    if not (isinstance(meta, dict) and isinstance(meta.get("model"), dict) and isinstance(meta.get("arrays"), list)):
        raise ValueError('the description must be a map (a JSON object) {"model": {...}, "arrays": [...]}, '
                         f"got {type(meta).__name__} {str(meta)[:60]}")
    table = []
    for entry in meta["arrays"]:
        if not (isinstance(entry, list) and 1 <= len(entry) <= 9 and isinstance(entry[0], str) and entry[0] in _DTYPES
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry[1:])):
            raise ValueError(f"array {len(table)} is {str(entry)[:60]}: not a dtype ({', '.join(sorted(_DTYPES))}) "
                             f"followed by at most 8 sizes >= 0")
        table.append((entry[0], tuple(entry[1:])))
    return table


def _description_size(reader: _Reader, version: int) -> int:
    """The length of the description: 4 bytes up to version 2, then 1-3 bytes (a varint)."""
    if version < 3:
        return int.from_bytes(reader.read(4), "little")
    size = 0
    for shift in range(0, 21, 7):
        byte = reader.read(1)[0]
        size |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return size
    raise ValueError(f"{reader.source} has a malformed description: its length takes more than 3 bytes")


def _description(reader: _Reader, version: int) -> tuple[dict, list, int]:
    """The description at the start of a payload (binary from version 3, JSON before), its
    arrays, and the bytes of those arrays."""
    size = _description_size(reader, version)
    most = min(_MAX_DESCRIPTION if version < 3 else _MAX_BINARY_DESCRIPTION, reader.limit // _DESCRIPTION_COST)
    if size > most:
        raise ValueError(f"{reader.source} has a malformed description: it claims {size:,} bytes (at most {most:,})")
    try:
        text = reader.read(size)
        meta = decode_tree(text, "binary description") if version >= 3 else json.loads(text)
        table = _array_table(meta)
    except RecursionError:
        raise ValueError(f"{reader.source} has a malformed description: JSON nested too deeply") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{reader.source} has a malformed description: {err}") from None
    rest = sum(math.prod(shape) * np.dtype(dtype).itemsize for dtype, shape in table)
    if reader.count + rest > reader.limit:
        raise ValueError(f"{reader.source} claims a payload of {reader.count + rest:,} bytes, more than its "
                         f"compressed size allows ({reader.limit:,}); refused before reading it")
    return meta, table, rest


def _arrays(reader: _Reader, table: list) -> list[np.ndarray]:
    """Each listed array read into a buffer of its own (aligned, and the payload held once)."""
    arrays = []
    for dtype, shape in table:
        count = math.prod(shape)
        data = reader.read(count * np.dtype(dtype).itemsize)
        arrays.append(np.frombuffer(data, dtype, count).reshape(shape) if count else np.zeros(shape, dtype))
    return arrays


def _read(f, packed: int | None, source: str) -> "CompressedModel":
    """Rebuild the model stored in the open binary file `f`: header, size limits and
    checksum first, then every layer, each checked against the arrays before it is built."""
    head = f.read(_HEADER)  # NOTE: the magic is checked before anything else is read
    if len(head) < _HEADER or not head.startswith(MAGIC[:-1]):
        raise ValueError(f"{source} is not a TinyTorch compressed model (bad magic)")
    if head[len(MAGIC) - 1] not in _READS:
        raise ValueError(f"{source} has format version {head[len(MAGIC) - 1]}, this TinyTorch reads versions "
                         f"{', '.join(map(str, _READS[:-1]))} and {_READS[-1]}")
    codec = head[len(MAGIC)]
    if codec not in _CODECS:
        raise ValueError(f"{source} uses unknown codec {codec}")
    reader = _Reader(f, codec, packed, source)
    meta, table, rest = _description(reader, head[len(MAGIC) - 1])
    stored = _arrays(reader, table)
    reader.finish()
    if reader.hash.digest() != head[len(MAGIC) + 1:]:
        raise ValueError(f"{source} does not match its checksum: it was truncated or altered")
    try:
        described = _DESCRIPTION_COST * (reader.count - rest)  # the decoded description's objects
        memory = _budget(packed) - reader.count - described
        arrays = StoredArrays(stored, DENSITY * reader.consumed + SLACK, memory)
        model = rebuild(meta["model"], arrays)
        # files before version 4 hold no mode: eval, the mode a stored model is used in
        modes = meta.get("training") if head[len(MAGIC) - 1] >= 4 else False
        return CompressedModel(set_module_modes(model, modes))
    except (KeyError, TypeError, IndexError, AttributeError, RecursionError, OverflowError) as err:
        raise ValueError(f"{source} has a malformed description: {err!r}") from None
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def from_bytes(blob: bytes, source: str = "data") -> "CompressedModel":
    """Rebuild the model that `to_bytes` stored, checking every part of the file."""
    return _read(io.BytesIO(blob), max(len(blob) - _HEADER, 0), source)


def save_compressed(model: Module, path: str | os.PathLike) -> int:
    """Write `model` (pruned, INT8) as a sparse compressed file; returns the bytes written.

    The file appears complete or not at all, by `tinytorch.core.files.write_atomic`: a
    symbolic link is followed, the old file's mode kept, and a target that is not a regular
    file (a folder, a device, a FIFO) refused with an OSError.
    """
    blob = to_bytes(model)  # before any file exists: a model that cannot be stored leaves nothing
    return write_atomic(path, blob)


def load_compressed(path: str | os.PathLike) -> "CompressedModel":
    """Read a file written by `save_compressed`; never unpickles anything.

    Nothing the file claims is believed before it is checked: the magic is read first,
    the payload is decompressed no further than its description and compressed size
    allow, the checksum is compared before any layer is built, and every shape and layer
    argument is checked against the arrays that are really there. Loading takes a small
    multiple of the memory of the model the file holds.

    Raises:
        ValueError: the file is truncated, foreign, of another version, altered, or
            claims more than it holds.
    """
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        packed = info.st_size - _HEADER if stat.S_ISREG(info.st_mode) else None
        return _read(f, packed, str(path))


class CompressedModel(Module):
    """A pruned, INT8-quantized model: call it like the original.

    The wrapper has no mode of its own: `training` is the wrapped model's, and
    `.train()`/`.eval()` reach every layer inside.
    """

    def __init__(self, model: Module):
        super().__init__()
        self.model = _check(model)

    @property
    def training(self) -> bool:
        model = vars(self).get("model")  # Module.__init__ sets the mode before the model is there
        return True if model is None else model.training

    @training.setter
    def training(self, mode: bool) -> None:
        if "model" in vars(self):
            self.model.training = bool(mode)

    def forward(self, x):
        return self.model(x)

    def size_report(self) -> SizeReport:
        from tinytorch.compression.storage import compressed_size  # the lesson's task, defined after this file

        return compressed_size(self)

    def save(self, path: str | os.PathLike) -> int:
        return save_compressed(self, path)
