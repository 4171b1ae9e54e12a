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
# # Module 16, given code: shared weights and entropy coding
#
# This file is part of Module 16 but holds no task. It takes the last two steps of Deep
# Compression (Han et al. 2016) beyond pruning + INT8: the surviving weights of a layer
# share a few values (a k-means codebook of `2**bits` centroids, fine-tuned by gradient),
# and the file stores each weight's centroid number and the gaps between surviving
# positions with a Huffman code, close to their entropy. `tito export 16` exports it:
#
# - `tinytorch/compression/entropy.py`: empirical entropy, canonical Huffman codes
#   (written as code lengths, never as trees), gap symbols with extra bits, and the
#   stream that holds one layer's codes and positions.
# - `tinytorch/compression/bitstream.py`: the bits and bytes under them (packed bit
#   fields, varints, a checked reader) and the length checks made before decoding.
# - `tinytorch/compression/sharing.py`: `kmeans_codebook`, the shared-weight layers
#   `SharedLinear` and `SharedConv2d`, `share_weights`, `fine_tune_centroids`,
#   `entropy_bound`, and how a shared layer is written to and read from the file.

# %%
#| default_exp compression.sharing

# %% [markdown]
# ### Entropy and Huffman codes
#
# A sequence of symbols with empirical probabilities `p_s` needs at least
# `sum_s count_s * log2(1 / p_s)` bits when each symbol is coded on its own: its
# (zero-order) entropy. A Huffman code gets within one bit per symbol of it, and much
# closer when no symbol dominates. Only the code *lengths* need storing: the canonical
# code gives the shortest symbols the smallest codes, so a decoder rebuilds the same
# code from the lengths alone (4 bits per symbol of the alphabet).
#
# Positions are coded as gaps (zeros before each surviving weight). A gap can be large,
# so only gaps 0-3 are symbols of their own; a larger gap `g` with `2**e <= g < 2**(e+1)`
# is one of two symbols per power of two (which half of the range), followed by `e - 1`
# raw bits: the alphabet stays below 64 symbols for any layer, and a geometric
# distribution of gaps loses little within each half.

# %%
#| export compression.entropy
"""Entropy coding of shared weights: canonical Huffman and an adaptive arithmetic coder for codes and position gaps, and the entropy bound (given code)."""
import heapq

import numpy as np

from tinytorch.compression.bitstream import (
    ByteReader, check_stream_size, check_symbol_count, pack_bits, unpack_bits, varint)

MAX_CODE_LENGTH = 15  # bits; code lengths are written as 4-bit numbers
_DIRECT_GAPS = 4  # gaps below this are symbols of their own
GAP_SYMBOLS = _DIRECT_GAPS + 2 * 31  # gaps below 2**32


def entropy_bits(symbols: np.ndarray) -> float:
    """The empirical (zero-order) entropy of a whole sequence, in bits: `sum -count * log2(count / n)`."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size == 0:
        return 0.0
    _, counts = np.unique(symbols, return_counts=True)
    return float(-(counts * np.log2(counts / symbols.size)).sum())


def mask_entropy_bits(n: int, nonzero: int) -> float:
    """Bits to say which `nonzero` of `n` positions are kept, at the empirical entropy `n * H(nonzero / n)`."""
    if n == 0 or nonzero in (0, n):
        return 0.0
    p = nonzero / n
    return float(-n * (p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def huffman_lengths(counts: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Huffman code lengths (uint8) for symbol `counts`; 0 for an unused symbol, at most `max_length`."""
    counts = np.asarray(counts, np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, np.uint8)
    if used.size == 1:
        lengths[used] = 1  # one symbol still needs a bit per occurrence to be counted
    if used.size <= 1:
        return lengths
    weights = counts[used]
    while True:
        depth = _tree_depths(weights)
        if depth.max() <= max_length:
            break
        # NOTE: too deep a tree (very skewed counts): flatten the counts and build again;
        # they reach all-ones, a balanced tree, long before 2**15 symbols.
        weights = (weights + 1) // 2
    lengths[used] = depth
    return lengths


def _tree_depths(weights: np.ndarray) -> np.ndarray:
    """Depth of each leaf in the Huffman tree of `weights` (merge the two lightest, repeat)."""
    m = weights.size
    parent = np.zeros(2 * m - 1, np.int64)
    heap = [(int(w), i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    node = m
    while len(heap) > 1:
        (w1, a), (w2, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (w1 + w2, node))
        node += 1
    depth = np.zeros(2 * m - 1, np.int64)
    for i in range(2 * m - 3, -1, -1):  # a parent is always numbered after its children
        depth[i] = depth[parent[i]] + 1
    return depth[:m]


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical Huffman code of each symbol (an int, read in `lengths[s]` bits), from lengths alone."""
    lengths = np.asarray(lengths, np.int64)
    codes = np.zeros(lengths.size, np.int64)
    code, previous = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - previous
        codes[s], previous = code, int(lengths[s])
        code += 1
    return codes


def check_lengths(lengths: np.ndarray, what: str) -> None:
    """Refuse code lengths that no Huffman code has: above 15 bits, or not a complete prefix code."""
    lengths = np.asarray(lengths, np.int64)
    if lengths.size and lengths.max() > MAX_CODE_LENGTH:
        raise ValueError(f"{what}: code length {lengths.max()} above {MAX_CODE_LENGTH}")
    used = lengths[lengths > 0]
    if used.size == 1 and used[0] != 1:
        raise ValueError(f"{what}: a single symbol must have a 1-bit code, got {used[0]}")
    if used.size > 1 and int((1 << (MAX_CODE_LENGTH - used)).sum()) != 1 << MAX_CODE_LENGTH:
        raise ValueError(f"{what}: code lengths do not form a complete prefix code")


# %% [markdown]
# Bits are written most significant first; a stream ends on a byte boundary with zero
# bits, and a reader refuses one whose padding or length differs.

# %%
#| export compression.bitstream
"""Bit and byte streams of the file's entropy-coded layers: packed bit fields, varints, a checked reader, and the length checks every decoder makes before it decodes (given code)."""
import numpy as np

_CHUNK = 1 << 16  # symbols per step of the bit writer: bounds its temporary arrays


def pack_bits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Each `values[i]` written in `widths[i]` bits (most significant first), padded with zeros to a byte."""
    values, widths = np.asarray(values, np.int64), np.asarray(widths, np.int64)
    parts = []
    for lo in range(0, values.size, _CHUNK):
        v, w = values[lo:lo + _CHUNK, None], widths[lo:lo + _CHUNK, None]
        j = np.arange(max(int(w.max()), 1))
        bits = (v >> np.maximum(w - 1 - j, 0)) & 1
        parts.append(bits[j < w].astype(np.uint8))
    return np.packbits(np.concatenate(parts)).tobytes() if parts else b""


def unpack_bits(data: bytes, widths: np.ndarray, what: str) -> np.ndarray:
    """The values `pack_bits(values, widths)` wrote into `data`; refuses a stream of another length.

    The length is checked first; the bits are then read `_CHUNK` values at a time, so the
    temporary arrays stay a few MiB whatever the stream."""
    widths = np.asarray(widths, np.int64)
    ends = np.cumsum(widths)
    check_stream_size(data, int(ends[-1]) if ends.size else 0, what)
    raw = np.frombuffer(data, np.uint8)
    values = np.zeros(widths.size, np.int64)
    for lo in range(0, widths.size, _CHUNK):
        w, stop = widths[lo:lo + _CHUNK], ends[lo:lo + _CHUNK]
        first = int(stop[0] - w[0])  # the chunk's first bit
        bits = np.unpackbits(raw[first // 8:(int(stop[-1]) + 7) // 8]).astype(np.int64)
        starts, v = stop - w - (first // 8) * 8, values[lo:lo + _CHUNK]
        for j in range(int(w.max(initial=0))):
            take = j < w
            v[take] = (v[take] << 1) | bits[starts[take] + j]
    return values


# %%
#| exporti compression.bitstream
def check_stream_size(data: bytes, bits: int, what: str) -> None:
    """Refuse `data` unless it is exactly `bits` bits, padded with zero bits to a byte."""
    if len(data) != (bits + 7) // 8:
        raise ValueError(f"{what}: {len(data)} bytes where {bits} bits take {(bits + 7) // 8}")
    if bits % 8 and data[-1] & ((1 << (8 - bits % 8)) - 1):
        raise ValueError(f"{what}: padding bits are not zero")


def check_symbol_count(data: bytes, count: int, shortest: int, longest: int, what: str) -> None:
    """Refuse a stream whose length cannot hold `count` symbols of `shortest`..`longest` bits,
    before anything is decoded from it (a few bytes must not ask for a long decode)."""
    if not (count * shortest + 7) // 8 <= len(data) <= (count * longest + 7) // 8:
        raise ValueError(f"{what}: {len(data):,} bytes cannot hold {count:,} symbols of "
                         f"{shortest}..{longest} bits each")


# %%
#| export compression.entropy
def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """`symbols` written in the canonical code of `lengths` (every symbol must have a length)."""
    symbols = np.asarray(symbols, np.int64)
    return pack_bits(canonical_codes(lengths)[symbols], np.asarray(lengths, np.int64)[symbols])


def _chain(jump: np.ndarray, start: int, most: int) -> np.ndarray:
    """The positions `start, jump[start], jump[jump[start]], ...`, at most `most` of them, up to
    `jump`'s end sentinels (its last two entries point to themselves): pointer doubling, so the
    walk is a few NumPy gathers instead of one Python step per symbol."""
    found = np.array([start], np.int64)
    end = jump.size - 2
    while found.size < most and found[-1] < end:
        found = np.concatenate([found, jump[found]])
        jump = jump[jump]
    found = found[:most]
    return found[:np.searchsorted(found, end)] if found[-1] >= end else found


def _huffman_table(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For every `width`-bit window: the symbol whose code starts it and that code's length (0: none)."""
    table_symbol = np.zeros(1 << width, np.int64)
    table_length = np.zeros(1 << width, np.int64)
    codes = canonical_codes(lengths)
    for s in np.flatnonzero(lengths):
        lo = int(codes[s]) << (width - int(lengths[s]))
        hi = lo + (1 << (width - int(lengths[s])))
        table_symbol[lo:hi], table_length[lo:hi] = s, lengths[s]
    return table_symbol, table_length


_HUFFMAN_BITS = 1 << 16  # bits of a stream decoded per step: bounds the temporary arrays


def huffman_decode(data: bytes, lengths: np.ndarray, count: int, what: str) -> np.ndarray:
    """The `count` symbols `huffman_encode` wrote with these `lengths`; ValueError on any malformed stream.

    The stream's length is checked against `count` before decoding; then it is decoded
    `_HUFFMAN_BITS` bits at a time: each bit position's code (one table look-up), then the
    chain of code starts from the first one (`_chain`)."""
    check_lengths(lengths, what)
    lengths = np.asarray(lengths, np.int64)
    if count == 0:
        check_stream_size(data, 0, what)
        return np.zeros(0, np.int64)
    if not lengths.any():
        raise ValueError(f"{what}: {count} symbols but no code")
    used = lengths[lengths > 0]
    width = int(used.max())
    check_symbol_count(data, count, int(used.min()), width, what)
    table_symbol, table_length = _huffman_table(lengths, width)
    raw, nbits = np.frombuffer(data, np.uint8), 8 * len(data)
    out, done, pos = np.empty(count, np.int64), 0, 0
    while done < count:
        if pos >= nbits:
            raise ValueError(f"{what}: stream ends after {done} of {count} symbols")
        size = min(_HUFFMAN_BITS, nbits - pos)
        bits = np.unpackbits(raw[pos // 8:(pos + size + width + 7) // 8])[pos % 8:pos % 8 + size + width]
        bits = np.concatenate([bits, np.zeros(size + width - bits.size, np.uint8)]).astype(np.int64)
        window = np.zeros(size, np.int64)
        for j in range(width):
            window = (window << 1) | bits[j:j + size]
        length = table_length[window]
        jump = np.concatenate([np.minimum(np.arange(size) + length, size), [size, size + 1]])
        jump[:size][length == 0] = size + 1  # an invalid code: the chain stops there
        chain = _chain(jump, 0, count - done)
        if length[chain[-1]] == 0:
            raise ValueError(f"{what}: invalid code at bit {pos + int(chain[-1])}")
        out[done:done + chain.size] = table_symbol[window[chain]]
        done += chain.size
        pos += int(chain[-1] + length[chain[-1]])
    check_stream_size(data, pos, what)
    return out


# %%
#| export compression.entropy
def gap_symbols(gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(symbol, extra value, extra bits)` of each gap: 0-3 as themselves, larger ones as half a power of two + raw bits."""
    gaps = np.asarray(gaps, np.int64)
    if gaps.size and (gaps.min() < 0 or gaps.max() >= 1 << 32):
        raise ValueError(f"gaps must be in [0, 2**32), got {gaps.min()}..{gaps.max()}")
    symbol, extra, width = gaps.copy(), np.zeros_like(gaps), np.zeros_like(gaps)
    big = gaps >= _DIRECT_GAPS
    g = gaps[big]
    e = np.frexp(g.astype(np.float64))[1] - 1  # floor(log2 g), exact for integers below 2**53
    symbol[big] = _DIRECT_GAPS + 2 * (e - 2) + ((g >> (e - 1)) & 1)
    width[big] = e - 1
    extra[big] = g & ((1 << (e - 1)) - 1)
    return symbol, extra, width


def gap_extra_widths(symbols: np.ndarray) -> np.ndarray:
    """How many raw bits follow each gap symbol."""
    symbols = np.asarray(symbols, np.int64)
    return np.where(symbols < _DIRECT_GAPS, 0, (symbols - _DIRECT_GAPS) // 2 + 1)


def gaps_from_symbols(symbols: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """The gaps that `gap_symbols` split into symbols and extra values."""
    symbols = np.asarray(symbols, np.int64)
    t = np.maximum(symbols - _DIRECT_GAPS, 0)
    e = t // 2 + 2
    big = (1 << e) | ((t & 1) << (e - 1)) | extra
    return np.where(symbols < _DIRECT_GAPS, symbols, big)


# %% [markdown]
# ### Arithmetic coding: closer than Huffman on small layers
#
# A Huffman code spends a whole number of bits per symbol and needs its table. An
# arithmetic coder narrows an interval by each symbol's probability instead, so a
# symbol costs its `log2(1 / p)` bits to within a fraction of a bit over the whole
# stream; an adaptive one learns the probabilities as it goes (counts start at 1 and
# grow by 2 per occurrence, the Krichevsky-Trofimov estimate), so no table is written.
# Here it wins on the small layers, where Huffman's table and its rounding to whole
# bits cost 2-15%; each layer keeps whichever of the two is smaller (large layers, where
# Huffman is within 1%, are not tried: this coder runs in Python, symbol by symbol).

# %%
#| export compression.entropy
_TOP = (1 << 32) - 1
_HALF, _QUARTER = 1 << 31, 1 << 30
_MAX_TOTAL = 1 << 16  # counts are halved above this total: intervals never become empty


class _Counts:
    """Adaptive symbol counts shared by coder and decoder (the same updates on both sides)."""

    def __init__(self, k: int):
        self.counts, self.total = [1] * k, k

    def interval(self, s: int) -> tuple[int, int]:
        below = sum(self.counts[:s])
        return below, below + self.counts[s]

    def find(self, target: int) -> tuple[int, int, int]:
        below = 0
        for s, c in enumerate(self.counts):
            if below + c > target:
                return s, below, below + c
            below += c
        raise ValueError("arithmetic decoder left its interval")  # impossible for a consistent state

    def update(self, s: int) -> None:
        self.counts[s] += 2
        self.total += 2
        if self.total > _MAX_TOTAL:
            self.counts = [(c + 1) // 2 for c in self.counts]
            self.total = sum(self.counts)


def arithmetic_encode(streams: list[tuple[np.ndarray, int]]) -> bytes:
    """Symbols of several sequences of equal length, interleaved (one of each in turn), each
    sequence with its own adaptive model over `k` symbols: `[(symbols, k), ...]`."""
    models = [_Counts(k) for _, k in streams]
    columns = [np.asarray(symbols, np.int64).tolist() for symbols, _ in streams]
    low, high, pending, bits = 0, _TOP, 0, []
    for row in zip(*columns):
        for s, model in zip(row, models):
            span, (lo, hi) = high - low + 1, model.interval(s)
            high = low + span * hi // model.total - 1
            low = low + span * lo // model.total
            while True:  # emit the bits the interval has settled, widen it again
                if high < _HALF:
                    bits += [0] + [1] * pending
                    pending = 0
                elif low >= _HALF:
                    bits += [1] + [0] * pending
                    pending, low, high = 0, low - _HALF, high - _HALF
                elif low >= _QUARTER and high < _HALF + _QUARTER:
                    pending, low, high = pending + 1, low - _QUARTER, high - _QUARTER
                else:
                    break
                low, high = low << 1, (high << 1) | 1
            model.update(s)
    # two more bits name a point inside the final interval (the reader pads with zeros)
    bits += [0] + [1] * (pending + 1) if low < _QUARTER else [1] + [0] * (pending + 1)
    return np.packbits(np.asarray(bits, np.uint8)).tobytes()


_MAX_SYMBOL_BITS = 18  # an adaptive count is at least 1 of at most _MAX_TOTAL + 2: under 17 bits a symbol


def arithmetic_decode(data: bytes, ks: list[int], count: int, what: str) -> list[np.ndarray]:
    """The `count` rows of symbols `arithmetic_encode` wrote with alphabets `ks`; ValueError when the
    stream's length does not match what was decoded.

    A stream longer than `count` rows can take is refused before decoding; bits are read
    one at a time from the bytes (no expanded copy of the stream)."""
    most = (count * len(ks) * _MAX_SYMBOL_BITS + 2 + 7) // 8
    if len(data) > most:
        raise ValueError(f"{what}: {len(data):,} bytes for {count:,} rows of {len(ks)} symbols, "
                         f"which take at most {most:,}")
    nbits = 8 * len(data)

    def bit(i: int) -> int:
        return data[i >> 3] >> (7 - (i & 7)) & 1 if i < nbits else 0

    models = [_Counts(k) for k in ks]
    value = 0
    for i in range(32):
        value = (value << 1) | bit(i)
    pos, low, high = 32, 0, _TOP
    out = [[] for _ in ks]
    for _ in range(count):  # bounded by count, which the caller charged to the file's budget
        for column, model in zip(out, models):
            span = high - low + 1
            s, lo, hi = model.find(((value - low + 1) * model.total - 1) // span)
            column.append(s)
            high = low + span * hi // model.total - 1
            low = low + span * lo // model.total
            while True:
                if high < _HALF:
                    pass
                elif low >= _HALF:
                    low, high, value = low - _HALF, high - _HALF, value - _HALF
                elif low >= _QUARTER and high < _HALF + _QUARTER:
                    low, high, value = low - _QUARTER, high - _QUARTER, value - _QUARTER
                else:
                    break
                if pos >= nbits + 32:
                    raise ValueError(f"{what}: stream ends early")
                low, high, value = low << 1, (high << 1) | 1, (value << 1) | bit(pos)
                pos += 1
            model.update(s)
    check_stream_size(data, pos - 32 + 2 if count else 2, what)
    return [np.asarray(column, np.int64) for column in out]


# %% [markdown]
# ### One layer's stream
#
# A shared layer's codes and positions travel as one byte string: the count of
# surviving weights (and which coder), then either Huffman (the code lengths of the
# centroid numbers and of the gap symbols, 4 bits each, then both coded streams) or
# arithmetic coding (the gap alphabet's size, then one stream with gap symbol and
# centroid number in turn), and last the raw extra bits of the large gaps. Every count
# is checked against the layer's size before anything is allocated from it.

# %%
#| exporti compression.bitstream
def varint(n: int) -> bytes:
    """`n` >= 0 in 7-bit groups, low first, a high bit on all but the last (`ByteReader.varint` reads it)."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


class ByteReader:
    """Reads a byte string front to back; every read is checked against what is left."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError(f"{self.what}: stream truncated")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def varint(self, limit: int) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if value > limit:
                raise ValueError(f"{self.what}: count {value} above {limit}")
            if not byte & 0x80:
                return value
            shift += 7

    def nibbles(self, count: int) -> np.ndarray:
        packed = np.frombuffer(self.take((count + 1) // 2), np.uint8)
        return np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)[:count].astype(np.int64)

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


# %%
#| export compression.entropy
def _nibbles(lengths: np.ndarray) -> bytes:
    lengths = np.asarray(lengths, np.uint8)
    padded = np.concatenate([lengths, np.zeros(lengths.size % 2, np.uint8)])
    return ((padded[0::2] << 4) | padded[1::2]).astype(np.uint8).tobytes()


HUFFMAN, ARITHMETIC = 0, 1
_ARITHMETIC_MAX = 20_000  # surviving weights of a layer up to which the arithmetic coder is tried


# %%
#| exporti compression.entropy
# NOTE: what decoding a position costs, charged to the file's budget (bytes of memory, see
# container.py) before it is decoded: Huffman's arrays of it, ~40 bytes; the arithmetic
# coder's time, ~16 us, counted as 1 KiB, so a file's floor of 64 MiB buys about a second.
POSITION_COST = {HUFFMAN: 48, ARITHMETIC: 1024}
ARITHMETIC_FILE_MAX = 32_768  # arithmetic-coded positions a writer puts in one file (32 MiB of budget)


# %%
#| export compression.entropy


def encode_layer_stream(positions: np.ndarray, codes: np.ndarray, n: int, symbols: int,
                        coder: int | None = None, arithmetic_left: int = _ARITHMETIC_MAX) -> bytes:
    """The sorted flat `positions` of `n` weights and their `codes` (< `symbols`), entropy-coded
    with `coder` (HUFFMAN, ARITHMETIC, or None: whichever is smaller, arithmetic only for at
    most `arithmetic_left` positions)."""
    if coder is None:
        # NOTE: the arithmetic coder runs in Python, ~15 us a symbol; above _ARITHMETIC_MAX weights
        # Huffman's table and rounding cost under 1% (measured: 0.5% at 100k) and it is 20x faster.
        small = np.size(positions) <= min(_ARITHMETIC_MAX, arithmetic_left)
        coders = (HUFFMAN, ARITHMETIC) if small else (HUFFMAN,)
        return min((encode_layer_stream(positions, codes, n, symbols, c) for c in coders), key=len)
    positions, codes = np.asarray(positions, np.int64), np.asarray(codes, np.int64)
    gap_sym, extra, width = gap_symbols(np.diff(positions, prepend=-1) - 1)
    m = int(gap_sym.max()) + 1 if gap_sym.size else 0
    head = varint(2 * positions.size + coder)
    if coder == ARITHMETIC:
        stream = arithmetic_encode([(gap_sym, m), (codes, symbols)])
        return b"".join([head, varint(m), varint(len(stream)), stream, pack_bits(extra, width)])
    code_lengths = huffman_lengths(np.bincount(codes, minlength=symbols))
    gap_lengths = huffman_lengths(np.bincount(gap_sym, minlength=m))
    code_stream, gap_stream = huffman_encode(codes, code_lengths), huffman_encode(gap_sym, gap_lengths)
    return b"".join([head, _nibbles(code_lengths), varint(m), _nibbles(gap_lengths),
                     varint(len(code_stream)), code_stream, varint(len(gap_stream)), gap_stream,
                     pack_bits(extra, width)])


def decode_layer_stream(data: bytes, n: int, symbols: int, what: str = "layer stream",
                        charge=None) -> tuple[np.ndarray, np.ndarray]:
    """`(positions, codes)` that `encode_layer_stream` wrote for a layer of `n` weights;
    `charge(cost, what)`, when given, is told `POSITION_COST` per position before decoding."""
    r = ByteReader(memoryview(data), what)  # slices of a view copy nothing
    head = r.varint(2 * n + 1)
    count, coder = head // 2, head % 2
    if charge is not None:
        charge(count * POSITION_COST[coder], f"{what}: {count:,} positions")
    if coder == ARITHMETIC:
        # NOTE: a skewed adaptive model codes thousands of symbols per byte: the count, not the
        # stream's length, bounds the work, so it must stay below what the writer ever uses.
        if count > _ARITHMETIC_MAX:
            raise ValueError(f"{what}: {count} arithmetic-coded positions, at most {_ARITHMETIC_MAX} are written")
        m = r.varint(GAP_SYMBOLS)
        if count and not m:
            raise ValueError(f"{what}: {count} positions but no gap alphabet")
        gap_sym, codes = arithmetic_decode(r.take(r.varint(len(data))), [m, symbols], count, f"{what} (symbols)")
    else:
        code_lengths = r.nibbles(symbols)
        gap_lengths = r.nibbles(r.varint(GAP_SYMBOLS))
        codes = huffman_decode(r.take(r.varint(len(data))), code_lengths, count, f"{what} (codes)")
        gap_sym = huffman_decode(r.take(r.varint(len(data))), gap_lengths, count, f"{what} (gaps)")
    extra = unpack_bits(r.rest(), gap_extra_widths(gap_sym), f"{what} (extra bits)")
    positions = np.cumsum(gaps_from_symbols(gap_sym, extra) + 1) - 1
    if positions.size and positions[-1] >= n:
        raise ValueError(f"{what}: positions run past the layer's {n} weights")
    return positions, codes


# %% [markdown]
# ### A codebook per layer
#
# k-means in one dimension: start from `2**bits` centroids spread evenly between the
# smallest and the largest surviving weight (the paper's linear initialisation, which
# keeps a few centroids for the rare large weights), give each weight its nearest
# centroid, move each centroid to the mean of its weights, and repeat until no weight
# changes centroid. Zeros take no part: pruned weights stay exactly zero.

# %%
#| export
"""Weight sharing: per-layer k-means codebooks, shared-weight layers whose centroids train, and their file encoding (given code)."""
import functools
import math

import numpy as np

from tinytorch.compression.encodings import Payload, encode_bias
from tinytorch.compression.entropy import (ARITHMETIC, ARITHMETIC_FILE_MAX, POSITION_COST, ByteReader, varint,
                                           decode_layer_stream, encode_layer_stream, entropy_bits,
                                           mask_entropy_bits)
from tinytorch.core.autograd import is_grad_enabled
from tinytorch.core.layers import Linear, Module
from tinytorch.core.checks import check_finite, check_int, check_number, check_pair
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor
from tinytorch.quantization import QuantizedLinear, QuantizedConv2d


def _check_bits(bits) -> int:
    return check_int("bits", bits, 1, 8)


def _nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted `centroids` for each value (the lower one on a tie)."""
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(midpoints, values, side="left")


def kmeans_codebook(values: np.ndarray, bits: int, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`(centroids, codes)`: 1-D k-means of `values` with `2**bits` centroids, linearly initialised.

    Args:
        values: the weights to share (a layer's non-zeros), any shape.
        bits: bits per code, 1..8.
        iterations: at most this many rounds of assign-then-average (>= 0).

    Returns:
        float32 centroids, sorted, and one uint8 code per value (in `values`' flat order);
        `centroids[codes]` is the shared weight. A centroid no value chose keeps its place.

    Raises:
        ValueError: bad `bits` or `iterations`, or a NaN or infinite value (one would make
            every centroid NaN).
    """
    k = 1 << _check_bits(bits)
    check_int("iterations", iterations, 0)
    values = np.asarray(check_finite("values", values), np.float64).reshape(-1)
    if values.size == 0:
        return np.zeros(k, np.float32), np.zeros(0, np.uint8)
    centroids = np.linspace(values.min(), values.max(), k)
    codes = _nearest(values, centroids)
    for _ in range(iterations):
        counts = np.bincount(codes, minlength=k)
        filled = counts > 0
        centroids[filled] = np.bincount(codes, weights=values, minlength=k)[filled] / counts[filled]
        new = _nearest(values, centroids)
        if np.array_equal(new, codes):
            break
        codes = new
    return centroids.astype(np.float32), codes.astype(np.uint8)


# %% [markdown]
# ### Layers whose weights share a codebook
#
# `SharedLinear` and `SharedConv2d` are a `Linear` and a `Conv2d` whose `weight` is
# computed: `centroids[codes]` at the surviving positions, zero elsewhere. The centroids
# are the layer's trainable parameter; the backward of that gather sums the gradient of
# every weight into its centroid (`np.bincount(codes, weights=grad[positions])`), which
# is the paper's centroid fine-tuning, and the pruned positions cannot move. The weight
# handed out is read-only: writing into it would change nothing.

# %%
#| export
def centroid_gradients(weight_grad: np.ndarray, positions: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The gradient of each of `k` centroids: the sum of the gradients of the weights that use it."""
    return np.bincount(codes, weights=np.asarray(weight_grad).reshape(-1)[positions], minlength=k).astype(np.float32)


class _SharedWeight:
    """What SharedLinear and SharedConv2d add to their float layer: a weight built from a codebook."""

    def _share(self, centroids: np.ndarray, codes: np.ndarray, positions: np.ndarray, shape: tuple,
               bias: np.ndarray | None) -> None:
        Module.__init__(self)
        self.shape = tuple(int(d) for d in shape)
        self.positions = np.asarray(positions, np.int64)
        self.codes = np.asarray(codes, np.uint8)
        self.centroids = Tensor(np.asarray(centroids, np.float32), requires_grad=True)
        self.bias = None if bias is None else Tensor(np.asarray(bias, np.float32), requires_grad=True)
        self._built: dict = {}  # the weight built for the current centroids (not a Tensor attribute)

    @property
    def bits(self) -> int:
        return int(self.centroids.data.size).bit_length() - 1

    @property
    def weight(self) -> Tensor:
        """The dense weight, `centroids[codes]` at `positions` and 0 elsewhere (read-only)."""
        key = (self.centroids.data.tobytes(), is_grad_enabled())
        if self._built.get("key") != key:
            dense = np.zeros(int(np.prod(self.shape)), np.float32)
            dense[self.positions] = self.centroids.data[self.codes]
            dense = dense.reshape(self.shape)
            dense.setflags(write=False)
            k, positions, codes = self.centroids.data.size, self.positions, self.codes

            def backward(grad: np.ndarray) -> tuple[np.ndarray]:
                return (centroid_gradients(grad, positions, codes, k),)

            self._built = {"key": key, "weight": Tensor.from_op(dense, (self.centroids,), backward, op="shared")}
        return self._built["weight"]

    def forward(self, x: Tensor) -> Tensor:
        self._built = {}  # a fresh graph node per call: gradients are never counted twice
        return super().forward(x)

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_built": {}}  # copies rebuild their own weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, shared: {self.codes.size} weights, {self.centroids.data.size} centroids"


class SharedLinear(_SharedWeight, Linear):
    """A Linear whose surviving weights share `2**bits` centroids (trainable); the rest are exactly 0."""

    def __init__(self, centroids: np.ndarray, codes: np.ndarray, positions: np.ndarray,
                 shape: tuple[int, int], bias: np.ndarray | None = None) -> None:
        self._share(centroids, codes, positions, shape, bias)
        self.out_features, self.in_features = self.shape


class SharedConv2d(_SharedWeight, Conv2d):
    """A Conv2d whose surviving weights share `2**bits` centroids (trainable); the rest are exactly 0."""

    def __init__(self, centroids: np.ndarray, codes: np.ndarray, positions: np.ndarray,
                 shape: tuple[int, int, int, int], bias: np.ndarray | None = None,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> None:
        self._share(centroids, codes, positions, shape, bias)
        self.out_channels, self.in_channels = self.shape[:2]
        self.kernel_size = self.shape[2:]
        self.stride = check_pair("stride", stride, 1)
        self.padding = check_pair("padding", padding, 0)


SHARED_LAYERS = (SharedLinear, SharedConv2d)


def shared_layer(layer: Module, bits: int) -> SharedLinear | SharedConv2d:
    """A shared-weight copy of a Linear or Conv2d (in its mode): k-means over its non-zero weights (see `kmeans_codebook`)."""
    if isinstance(layer, SHARED_LAYERS) or not isinstance(layer, (Linear, Conv2d)):
        raise TypeError(f"layer must be a float Linear or Conv2d, got {type(layer).__name__}")
    _check_layer_finite("layer", layer)
    weight = layer.weight.data
    positions = np.flatnonzero(weight)
    centroids, codes = kmeans_codebook(weight.reshape(-1)[positions], bits)
    bias = None if layer.bias is None else layer.bias.data.copy()
    if isinstance(layer, Linear):
        shared = SharedLinear(centroids, codes, positions, weight.shape, bias)
    else:
        shared = SharedConv2d(centroids, codes, positions, weight.shape, bias, layer.stride, layer.padding)
    shared.training = layer.training  # the copy is in the mode of the layer it replaces
    return shared


def _check_layer_finite(name: str, layer: Module) -> None:
    """Refuse a NaN or infinite weight or bias of `layer` (named `name` in the message)."""
    check_finite(f"{name} weight", layer.weight.data)
    if layer.bias is not None:
        check_finite(f"{name} bias", layer.bias.data)


def share_weights(model: Module, bits: int) -> Module:
    """Replace, in place, every float Linear and Conv2d of `model` by its shared-weight copy; returns `model`.

    Raises:
        ValueError: a layer holds a NaN or infinite weight or bias (named); nothing is replaced.
    """
    _check_bits(bits)
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    if isinstance(model, (Linear, Conv2d)):  # a layer cannot replace itself in place
        raise TypeError(f"share_weights replaces the layers inside a model; wrap this {type(model).__name__} "
                        "in a Sequential, or call shared_layer(layer, bits)")
    chosen = [(parent, f"{prefix}.{name}" if prefix else name, name, child)
              for prefix, parent in model.named_modules() for name, child in parent.named_children()
              if isinstance(child, (Linear, Conv2d)) and not isinstance(child, SHARED_LAYERS)]
    for _, full, _, child in chosen:  # every layer checked before the first is replaced
        _check_layer_finite(f"layer {full!r}", child)
    for parent, _, name, child in chosen:
        setattr(parent, name, shared_layer(child, bits))
    return model


def shared_layers(model: Module) -> list[tuple[str, SharedLinear | SharedConv2d]]:
    """The `(name, layer)` pairs of every shared-weight layer of `model`."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SHARED_LAYERS)]


CODEBOOKS = ("linear", "kmeans")


def check_codebook(bits, codebook) -> int:
    """`bits` checked against `codebook`: "linear" is Module 15's INT8 (bits=8), "kmeans" shares 2**bits values."""
    if codebook not in CODEBOOKS:
        raise ValueError(f"codebook must be one of {CODEBOOKS}, got {codebook!r}")
    if codebook == "linear" and (isinstance(bits, bool) or bits != 8):
        raise ValueError(f"bits must be 8 with codebook='linear' (INT8), got {bits!r}; "
                         "use codebook='kmeans' for 1..8 bits")
    return _check_bits(bits)


def prune_and_share(model: Module, sparsity: float | None, bits: int, scope: str = "global",
                    int8_bias: bool = False, drop_dead: bool = True) -> Module:
    """A pruned copy of `model` whose weights share `2**bits` centroids per layer (the input is not changed).

    The steps of `prune_and_quantize` with `codebook="kmeans"`: `magnitude_prune` (unless
    `sparsity` is None), `drop_dead_units`, biases rounded to int8 when `int8_bias`, then
    `share_weights`.
    """
    import copy

    from tinytorch.compression.prune import magnitude_prune
    from tinytorch.compression.deadunits import drop_dead_units
    from tinytorch.quantization import quantize_int8

    bits = _check_bits(bits)
    work = copy.deepcopy(model)
    if sparsity is not None:
        magnitude_prune(work, sparsity, scope=scope)
    if drop_dead:
        drop_dead_units(work)
    share_weights(work, bits)
    for _, layer in shared_layers(work):
        if int8_bias and layer.bias is not None and np.any(layer.bias.data):
            layer.bias.data[...] = quantize_int8(layer.bias.data).dequantize()
    return work


def fine_tune_centroids(model: Module, loss_fn, loader, epochs: int, lr: float = 1e-3,
                        progress: bool | None = None) -> list[dict]:
    """Train only the centroids of `model`'s shared layers (Adam, Module 07's `fit`); returns fit's history.

    Codes, positions and biases stay as they are, so a bias stored as exact int8 stays so.

    Raises:
        ValueError: `model` has no shared layer, or `lr` is not a positive number.
    """
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import fit

    layers = [layer for _, layer in shared_layers(model)]
    if not layers:
        raise ValueError("model has no shared-weight layer: call share_weights (or prune_and_quantize "
                         "with codebook='kmeans') first")
    lr = check_number("lr", lr, 0.0, math.inf, low_open=True, high_open=True)
    frozen = [p for p in model.parameters() if not any(p is layer.centroids for layer in layers)]
    for p in frozen:
        p.requires_grad = False
    try:
        return fit(model, Adam([layer.centroids for layer in layers], lr=lr), loss_fn, loader, epochs,
                   progress=progress)
    finally:
        for p in frozen:
            p.requires_grad = True


# %% [markdown]
# ### The entropy bound
#
# What a coder of these symbols, each coded on its own with the best fixed
# probabilities, cannot beat: the positions at `n * H(nonzero / n)` bits (the entropy of
# a mask whose zeros fall at random), the codes (or int8 values) at their empirical
# entropy, plus the centroids (or scales) and the biases as the file stores them (8
# bits per entry and a scale, or float32). `compressed_size` puts it beside the bytes
# written; what every file carries besides is not in it: the 23-byte header and the
# description of the layers (45 bytes for the demo's shared MLP, format version 3). Gaps can do better than a random mask
# where zeros cluster (a dead unit's whole row): `"total_gaps"` takes, per layer, the
# smaller of the mask's entropy and the empirical entropy of its gaps.

# %%
#| export
def _bias_bytes(bias, shared: bool) -> int:
    """A bias as the file stores it: 8 bits per entry and one scale, or float32."""
    if bias is None:
        return 0
    bias = np.asarray(getattr(bias, "data", bias), np.float32)
    int8 = int8_form(bias) is not None if shared else "int8" in encode_bias(bias, Payload())
    return bias.size + 4 if int8 else 4 * bias.size


def _layer_bound(layer: Module) -> dict[str, float]:
    """Bytes of one weight layer at its entropy bound, in parts."""
    if isinstance(layer, SHARED_LAYERS):
        flat_positions, values, table = layer.positions, layer.codes, 4 * layer.centroids.data.size
        n = int(np.prod(layer.shape))
    else:
        q = getattr(layer, "qweight", None)
        weights = (layer.weight.data if q is None else q.values).reshape(-1)
        flat_positions, n = np.flatnonzero(weights), weights.size
        values = weights[flat_positions]
        scales = 0 if q is None else (4 if np.all(q.scale == q.scale.flat[0]) else 4 * q.scale.size)
        table = scales + (0 if q is None or not np.any(q.zero_point) else 4 * q.zero_point.size)
    mask_bits = mask_entropy_bits(n, flat_positions.size)
    gap_bits = entropy_bits(np.diff(flat_positions, prepend=-1) - 1)
    value_bits = 32 * values.size if values.dtype == np.float32 else entropy_bits(values)
    return {"positions": mask_bits / 8, "values": value_bits / 8, "tables": float(table),
            "biases": float(_bias_bytes(layer.bias, isinstance(layer, SHARED_LAYERS))), "gaps_saving": max(0.0, mask_bits - gap_bits) / 8}


def entropy_bound(model: Module) -> dict[str, float]:
    """The bytes of `model`'s weights at their entropy bound: positions, values (codes), tables
    (centroids, scales), biases, other (BatchNorm, fp32), the total, and "total_gaps" (positions
    at the smaller of the mask's and the gaps' entropy, layer by layer)."""
    from tinytorch.core.spatial import BatchNorm2d

    parts = {"positions": 0.0, "values": 0.0, "tables": 0.0, "biases": 0.0, "other": 0.0}
    saving = 0.0
    for _, m in model.named_modules():
        if isinstance(m, (Linear, Conv2d, QuantizedLinear, QuantizedConv2d)):
            layer = _layer_bound(m)
            saving += layer.pop("gaps_saving")
            for key, value in layer.items():
                parts[key] += value
        elif isinstance(m, BatchNorm2d):
            parts["other"] += sum(getattr(m, k).data.nbytes for k in ("weight", "bias", "running_mean", "running_var"))
    total = sum(parts.values())
    return parts | {"total": total, "total_gaps": total - saving}


def with_entropy_bound(size_report):
    """Wraps the lesson's `compressed_size`: the SizeReport it returns gets `entropy_bound(model)` filled in."""
    @functools.wraps(size_report)
    def sized(model: Module):
        report = size_report(model)
        if report.entropy_bound is None:
            report.entropy_bound = entropy_bound(model)
        return report

    return sized


# %% [markdown]
# ### In the file
#
# A shared layer is one byte string in the file, so its description stays tiny
# (`{"type": "Linear", "shared": 0}`: five bytes in binary). The byte string holds the
# weight's shape, the bias (int8 with one scale when that is exact, else float32), the
# centroids (float32, exactly), then the entropy-coded codes and positions
# (`encode_layer_stream`). Reading it back checks every size first.

# %%
#| export
_NO_BIAS, _INT8_BIAS, _FLOAT_BIAS = 0, 1, 2
# NOTE: a shared layer's dense weight is built from its shape, not from bytes in the file:
# the shape is capped (1 GiB of float32) so a forged file cannot ask for any amount of memory.
MAX_SHARED_WEIGHTS = 1 << 28


# %%
#| exporti
def shared_cost(n: int, rows: int) -> int:
    """Bytes a loaded shared layer of `n` weights and `rows` rows holds besides its positions:
    the dense float32 weight it builds, and its bias."""
    return 4 * n + 4 * rows


# %%
#| export
def int8_form(bias: np.ndarray) -> tuple[np.ndarray, np.float32] | None:
    """`(int8 values, scale)` whose float32 product is exactly `bias`, or None when there is none.

    The scale is searched within a few ulps of `max|bias| / 127`: a bias rounded to int8 once
    (`prune_and_quantize(..., int8_bias=True)`) is found even where rounding it again would move it.
    """
    bias = np.asarray(bias, np.float32)
    if not bias.size or not np.any(bias) or not np.all(np.isfinite(bias)):
        return None
    scale = np.float32(np.abs(bias).max() / np.float32(127))
    for _ in range(4):
        scale = np.nextafter(scale, np.float32(0))  # start a few ulps below, walk up
    for _ in range(9):
        values = np.round(bias / scale)
        if np.abs(values).max() <= 127 and np.array_equal(values.astype(np.float32) * scale, bias):
            return values.astype(np.int8), scale
        scale = np.nextafter(scale, np.float32(np.inf))
    return None


def _bias_blob(bias: Tensor | None) -> bytes:
    if bias is None:
        return bytes([_NO_BIAS])
    form = int8_form(bias.data)
    if form is None:
        return bytes([_FLOAT_BIAS]) + np.asarray(bias.data, "<f4").tobytes()
    return bytes([_INT8_BIAS]) + form[0].tobytes() + np.asarray([form[1]], "<f4").tobytes()


def encode_shared(layer: SharedLinear | SharedConv2d, payload: Payload) -> dict:
    """The file description of a shared layer, its one byte string appended to `payload`."""
    conv = isinstance(layer, SharedConv2d)
    k, n, count = layer.centroids.data.size, int(np.prod(layer.shape)), layer.positions.size
    left = ARITHMETIC_FILE_MAX - payload.arithmetic if payload.packed else 0  # see to_bytes
    stream = encode_layer_stream(layer.positions, layer.codes, n, k, arithmetic_left=left)
    coder = stream[0] & 1  # the head's low bit (encode_layer_stream)
    payload.arithmetic += count if coder == ARITHMETIC else 0
    payload.cost += shared_cost(n, layer.shape[0]) + count * POSITION_COST[coder]
    payload.claimed += n  # the weights a reader allows for (DENSITY): a file it refuses is never written
    blob = b"".join([varint(len(layer.shape)), *map(varint, layer.shape), bytes([layer.bits]),
                     _bias_blob(layer.bias), np.asarray(layer.centroids.data, "<f4").tobytes(), stream])
    spec = {"type": "Conv2d" if conv else "Linear", "shared": payload.add(np.frombuffer(blob, np.uint8))}
    if conv:
        spec["args"] = {"stride": list(layer.stride), "padding": list(layer.padding)}
    return spec


def decode_shared(spec: dict, arrays: list[np.ndarray]) -> SharedLinear | SharedConv2d:
    """The shared layer `encode_shared` described; ValueError on anything malformed."""
    conv = spec["type"] == "Conv2d"
    stored = arrays[spec["shared"]]
    if stored.dtype != np.uint8 or stored.ndim != 1:
        raise ValueError("a shared layer must be stored as a 1-D uint8 array")
    r = ByteReader(memoryview(stored), f"shared {spec['type']}")
    ndim = r.varint(4)
    if ndim != (4 if conv else 2):
        raise ValueError(f"shared {spec['type']} has a {ndim}-D weight")
    shape = tuple(r.varint(MAX_SHARED_WEIGHTS) for _ in range(ndim))
    bits = r.take(1)[0]
    if not all(shape) or math.prod(shape) > MAX_SHARED_WEIGHTS or not 1 <= bits <= 8:
        raise ValueError(f"shared layer has shape {shape} and {bits} bits: allowed are 1..8 bits and "
                         f"at most {MAX_SHARED_WEIGHTS:,} weights")
    charge = getattr(arrays, "charge", None)  # a file being read: its size bounds what it may cost
    if charge is not None:
        arrays.allow(math.prod(shape), f"shared {spec['type']}")
        charge(shared_cost(math.prod(shape), shape[0]), f"shared {spec['type']} of shape {list(shape)}")
    bias_kind = r.take(1)[0]
    if bias_kind == _INT8_BIAS:
        values = np.frombuffer(r.take(shape[0]), np.int8).astype(np.float32)
        bias = values * np.frombuffer(r.take(4), "<f4").astype(np.float32)[0]
    elif bias_kind == _FLOAT_BIAS:
        bias = np.frombuffer(r.take(4 * shape[0]), "<f4").astype(np.float32)
    elif bias_kind == _NO_BIAS:
        bias = None
    else:
        raise ValueError(f"shared layer has an unknown bias kind {bias_kind}")
    centroids = np.frombuffer(r.take(4 << bits), "<f4").astype(np.float32)
    positions, codes = decode_layer_stream(r.rest(), int(np.prod(shape)), 1 << bits, r.what, charge)
    if not conv:
        return SharedLinear(centroids, codes, positions, shape, bias)
    args = spec.get("args", {})
    return SharedConv2d(centroids, codes, positions, shape, bias,
                        tuple(args.get("stride", (1, 1))), tuple(args.get("padding", (0, 0))))
