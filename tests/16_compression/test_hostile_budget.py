"""Hostile files against the per-file budget: decoders, shared arrays, layer counts, padding.

A file whose payload is compressed to S bytes may cost the reader 64 MiB + 64 x S bytes
(the container's docstring). Each file below reproduces one way a few bytes asked for
gigabytes or minutes; each is loaded in a child process (address space capped at 1 GiB
over its baseline) that reports the peak of traced allocations and the time, and both
must stay within the target: 64 MiB + 64 x the file's size, and 2 seconds per MB (at
least 2 seconds).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from .test_hostile_files import SCALE, craft, qlinear

MiB = 1 << 20


def varint(n: int) -> bytes:
    from tinytorch.compression.entropy import varint as encode

    return encode(n)


def shared_blob(rows: int, cols: int, stream: bytes, bits: int = 1) -> bytes:
    """The byte string of a shared Linear of `rows` x `cols`: no bias, zero centroids, then `stream`."""
    return b"".join([varint(2), varint(rows), varint(cols), bytes([bits, 0]), bytes(4 << bits), stream])


def huffman_stream(count: int, code_stream: bytes, gap_stream: bytes = b"\x00") -> bytes:
    """A Huffman layer stream of `count` positions: two 1-bit codes, one gap symbol of 1 bit."""
    return b"".join([varint(2 * count), b"\x11", varint(2), b"\x11", varint(len(code_stream)), code_stream,
                     varint(len(gap_stream)), gap_stream])


def arithmetic_stream(count: int, stream: bytes) -> bytes:
    return b"".join([varint(2 * count + 1), varint(2), varint(len(stream)), stream])


def shared_file(blobs: list[bytes], names: list[int] | None = None) -> bytes:
    """A Sequential of shared Linears, layer i naming blob `names[i]`, zlib-packed."""
    names = list(range(len(blobs))) if names is None else names
    meta = {"model": {"type": "Sequential", "layers": [{"type": "Linear", "shared": i} for i in names]},
            "arrays": [["uint8", len(b)] for b in blobs]}
    return craft(meta, b"".join(blobs), codec=1)


def hostile_files() -> dict[str, tuple[bytes, str | None]]:
    """name -> (file bytes, the message its ValueError must match; None: it loads)."""
    from tinytorch.compression.entropy import arithmetic_encode

    rng = np.random.default_rng(25)
    files = {}
    # S1: a Huffman stream far longer than its count allows, and a count beyond the budget
    files["huffman_16mib_stream_for_500k_symbols"] = (
        shared_file([shared_blob(1000, 1000, huffman_stream(500_000, bytes(16 * MiB)))]), "cannot hold 500,000 symbols")
    files["huffman_4m_positions"] = (
        shared_file([shared_blob(2000, 2000, huffman_stream(4_000_000, bytes(500_000), bytes(500_000)))]),
        "4,000,000 (weights|positions)")
    # S1: an arithmetic stream of 16 MiB for 20,000 positions
    files["arithmetic_16mib_stream"] = (
        shared_file([shared_blob(200, 200, arithmetic_stream(20_000, bytes(16 * MiB)))]), "which take at most")
    # S4: many layers of 20,000 arithmetic-coded positions each, all naming one small array
    busy = shared_blob(200, 200, arithmetic_stream(20_000, arithmetic_encode(
        [(rng.integers(0, 2, 20_000), 2), (rng.integers(0, 2, 20_000), 2)])))
    files["arithmetic_500_layers_one_array"] = (shared_file([busy], [0] * 500), "needs .* bytes, more than")
    files["arithmetic_40_layers"] = (shared_file([busy] * 40), "needs .* bytes, more than")
    # S1: a gap code of 16 MiB for a 1000 x 1000 weight
    meta = {"model": qlinear((1000, 1000)), "arrays": [["float32", 1], ["uint8", 16 * MiB], ["int8", 0]]}
    files["gap_code_16mib"] = (craft(meta, SCALE + bytes(16 * MiB), codec=1), "longer than a mask")
    # S2: twenty quantized layers naming one 16M-row int8 array (and with an int8 bias)
    rows = 16 * MiB
    weight = {"shape": [rows, 1], "scale": 0, "channels": rows, "encoding": "dense", "values": 1}
    layer = {"type": "Linear", "weight": weight, "qbias": None}
    meta = {"model": {"type": "Sequential", "layers": [layer] * 20}, "arrays": [["float32", 1], ["int8", rows, 1]]}
    files["quantized_20_layers_one_16m_row_array"] = (craft(meta, SCALE + bytes(rows), codec=1), "bytes, more than")
    layer = {"type": "Linear", "weight": weight, "qbias": {"int8": 2, "scale": 0}}
    meta = {"model": {"type": "Sequential", "layers": [layer] * 20},
            "arrays": [["float32", 1], ["int8", rows, 1], ["int8", rows]]}
    files["quantized_20_layers_int8_bias"] = (craft(meta, SCALE + bytes(2 * rows), codec=1), "bytes, more than")
    # S3: many layers build in linear time (these load)
    relus = {"model": {"type": "Sequential", "layers": [{"type": "ReLU"}] * 40_000}, "arrays": []}
    files["relu_40000_layers"] = (craft(relus, codec=1), None)
    for n, match in ((170_000, "a layer needs 1,024 bytes, more than"), (349_000, r"\(at most 524,288\)")):
        relus = {"model": {"type": "Sequential", "layers": [{"type": "ReLU"}] * n}, "arrays": []}
        files[f"relu_{n}_layers"] = (craft(relus, codec=1), match)
    # M6: padding far beyond the kernel
    conv = {"type": "Conv2d", "bias": None, "float_weight": 0, "args": {"stride": 1, "padding": 65536}}
    files["conv_padding_65536"] = (craft({"model": conv, "arrays": [["float32", 1, 1, 3, 3]]}, bytes(36)),
                                   "padding=.65536, 65536.*at most kernel size - 1")
    pool = {"type": "MaxPool2d", "args": {"kernel_size": 2, "padding": 60000}}
    files["pool_padding_60000"] = (craft({"model": pool, "arrays": []}), "at most half the kernel size")
    return files


CHILD = textwrap.dedent(r"""
    import json, os, resource, sys, time, tracemalloc
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        cap = int(f.read().split()[0]) * page + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from tinytorch.compression import load_compressed

    results = {}
    def load(path):
        try:
            load_compressed(path)
            return {"error": None}
        except BaseException as err:
            return {"error": type(err).__name__, "message": str(err)[:300]}

    for name, path in json.load(sys.stdin).items():
        start = time.perf_counter()
        outcome = load(path)  # timed untraced: tracing slows every Python allocation
        outcome["seconds"] = time.perf_counter() - start
        tracemalloc.start()
        load(path)
        outcome["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[name] = outcome
    json.dump(results, sys.stdout)
""")


def run_child(code: str, jobs: dict) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(jobs), capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def within_target(size: int, outcome: dict) -> bool:
    return outcome["peak"] <= 64 * MiB + 64 * size and outcome["seconds"] <= max(2.0, 2.0 * size / 1e6)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    files, jobs = hostile_files(), {}
    for name, (blob, _) in files.items():
        assert len(blob) < 1 << 30
        (tmp / f"{name}.ttz").write_bytes(blob)
        jobs[name] = str(tmp / f"{name}.ttz")
    return files, run_child(CHILD, jobs)


def test_each_hostile_file_is_refused_with_a_value_error_or_loads(outcome):
    files, results = outcome
    def right(r: dict, match: str | None) -> bool:
        if match is None:
            return r["error"] is None
        return r["error"] == "ValueError" and re.search(match, r["message"]) is not None

    wrong = {name: results[name] for name, (_, match) in files.items() if not right(results[name], match)}
    assert not wrong, json.dumps(wrong, indent=1)


def test_each_hostile_file_stays_within_the_memory_and_time_target(outcome):
    files, results = outcome
    over = {name: results[name] | {"bytes": len(blob)} for name, (blob, _) in files.items()
            if not within_target(len(blob), results[name])}
    assert not over, json.dumps(over, indent=1)


def test_the_files_are_small_and_claim_much():
    files = hostile_files()
    assert len(files["huffman_16mib_stream_for_500k_symbols"][0]) < 40_000
    assert len(files["gap_code_16mib"][0]) < 70_000
    assert len(files["quantized_20_layers_one_16m_row_array"][0]) < 40_000


SAFETENSORS_CHILD = textwrap.dedent(r"""
    import json, resource, sys, time, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
    from tinytorch.deploy import load_safetensors
    from tinytorch.core.layers import Linear, Sequential

    results = {}
    for name, path in json.load(sys.stdin).items():
        tracemalloc.start()
        start = time.perf_counter()
        try:
            load_safetensors(path, Sequential(Linear(2, 2)))
            outcome = {"error": None}
        except BaseException as err:
            outcome = {"error": type(err).__name__, "message": str(err)[:300]}
        outcome["seconds"] = time.perf_counter() - start
        outcome["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[name] = outcome
    json.dump(results, sys.stdout)
""")


def test_safetensors_from_a_device_a_pipe_or_a_lying_header_is_refused_at_once(tmp_path):
    pytest.importorskip("safetensors")
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    jobs = {"lying_header": str(lying)}
    if os.path.exists("/dev/zero"):
        jobs["dev_zero"] = "/dev/zero"
    results = run_child(SAFETENSORS_CHILD, jobs)
    for name, r in results.items():
        assert r["error"] == "ValueError", (name, r)
        assert "not a regular file" in r["message"] or "header claims" in r["message"], (name, r)
        assert r["peak"] < MiB and r["seconds"] < 1.0, (name, r)


def test_the_writer_keeps_arithmetic_coding_within_the_file_budget():
    """Many small shared layers: only the first 32,768 positions of a file are arithmetic-coded,
    and the file loads back to the same weights."""
    from tinytorch.compression import from_bytes, prune_and_quantize, to_bytes
    from tinytorch.compression.encodings import Payload
    from tinytorch.compression.entropy import ARITHMETIC, ARITHMETIC_FILE_MAX
    from tinytorch.compression.sharing import encode_shared, shared_layers
    from tinytorch.core.layers import Linear, Sequential

    model = prune_and_quantize(Sequential(*[Linear(150, 150) for _ in range(4)]), 0.5, bits=2, codebook="kmeans")
    loaded = from_bytes(to_bytes(model))
    p = Payload()
    coders = [p.parts[encode_shared(layer, p)["shared"]] for _, layer in shared_layers(model)]
    arithmetic = sum(layer.positions.size for (_, layer), blob in zip(shared_layers(model), coders)
                     if _coder(blob) == ARITHMETIC)
    assert 0 < arithmetic <= ARITHMETIC_FILE_MAX < sum(layer.positions.size for _, layer in shared_layers(model))
    for (_, a), (_, b) in zip(shared_layers(model), shared_layers(loaded)):
        np.testing.assert_array_equal(a.weight.data, b.weight.data)


def _coder(blob: bytes) -> int:
    """The coder bit of a shared layer's byte string (after its shape, bits, bias and centroids)."""
    from tinytorch.compression.entropy import ByteReader

    r = ByteReader(blob, "blob")
    shape = [r.varint(1 << 40) for _ in range(r.varint(4))]
    bits, bias = r.take(1)[0], r.take(1)[0]
    assert bias == 0 or bias in (1, 2)
    r.take({0: 0, 1: shape[0] + 4, 2: 4 * shape[0]}[bias] + (4 << bits))
    return r.varint(1 << 62) % 2


def test_a_huge_layer_pruned_to_almost_nothing_is_saved_within_the_budget_it_loads_under():
    """16.8M float weights at 99.9%: gap-coded they would cost the reader 84 MB for a 160 KB
    file, so the writer stores bitmasks; shared, the file is refused at save, not at load."""
    from tinytorch.compression import from_bytes, magnitude_prune, prune_and_quantize, to_bytes
    from tinytorch.core.layers import Linear, Sequential

    model = Sequential(Linear(4096, 4096))
    magnitude_prune(model, 0.999)
    blob = to_bytes(model)
    np.testing.assert_array_equal(from_bytes(blob).model[0].weight.data, model[0].weight.data)
    assert 4096 * 4096 // 8 < len(blob) < 4096 * 4096 // 8 + 4 * 17_000 + 4096 * 4 + 2000  # bitmask + values + bias
    with pytest.raises(ValueError, match="too sparse for their size"):
        to_bytes(prune_and_quantize(model, None, bits=4, codebook="kmeans"))
