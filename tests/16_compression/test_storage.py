"""Tasks 16.10-16.12: honest sizes, the sparse INT8 file, pruning + quantization."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import (CompressedModel, compressed_size, format_bytes, load_compressed,
                                   magnitude_prune, prune_and_quantize, save_compressed)
from tinytorch.compression.formats import gap_code, gap_positions
from tinytorch.core.layers import Module, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

from .conftest import make_cnn, make_mlp


def quantized_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantizedLinear, QuantizedConv2d))]


@pytest.mark.task("16.10")
@given(rows=st.integers(1, 40), cols=st.integers(1, 300), density=st.floats(0, 1), seed=st.integers(0, 9))
def test_format_formulas_equal_real_array_bytes(rows, cols, density, seed):
    rng = np.random.default_rng(seed)
    values = (rng.integers(1, 128, (rows, cols)) * (rng.random((rows, cols)) < density)).astype(np.int8)
    nz = values != 0
    nnz = int(nz.sum())
    scales = np.ones(rows, np.float32)
    index = np.nonzero(nz)[1].astype(np.uint8 if cols <= 256 else np.uint16)
    starts = np.zeros(rows + 1, np.int32)
    sizes = format_bytes(values.size, nnz, rows, cols, rows)
    assert sizes["dense_fp32"] == values.astype(np.float32).nbytes
    assert sizes["dense_int8"] == values.nbytes + scales.nbytes
    assert sizes["csr_int8"] == values[nz].nbytes + index.nbytes + starts.nbytes + scales.nbytes
    assert sizes["bitmask_int8"] == np.packbits(nz).nbytes + values[nz].nbytes + scales.nbytes
    code = gap_code(nz.reshape(-1))
    with_escapes = format_bytes(values.size, nnz, rows, cols, rows, code.size - nnz)
    assert with_escapes["gaps_int8"] == code.nbytes + values[nz].nbytes + scales.nbytes


@given(n=st.integers(1, 3000), density=st.floats(0, 1), seed=st.integers(0, 99))
def test_gap_code_round_trips_with_long_runs(n, density, seed):
    rng = np.random.default_rng(seed)
    keep = rng.random(n) < density ** 3  # densities down to 1e-6: runs far longer than 255
    code = gap_code(keep)
    assert code.dtype == np.uint8 and code.size >= np.count_nonzero(keep)
    np.testing.assert_array_equal(gap_positions(code, n), np.flatnonzero(keep))


def test_gap_code_refuses_corrupt_streams():
    with pytest.raises(ValueError, match="ends inside a run"):
        gap_positions(np.array([3, 255], np.uint8), 1000)
    with pytest.raises(ValueError, match="past the end of 5 entries"):
        gap_positions(np.array([7], np.uint8), 5)


def _same_quantized(a, b):
    qa, qb = quantized_layers(a), quantized_layers(b)
    assert [n for n, _ in qa] == [n for n, _ in qb]
    for (_, x), (_, y) in zip(qa, qb):
        np.testing.assert_array_equal(x.qweight.values, y.qweight.values)
        np.testing.assert_array_equal(x.qweight.scale, y.qweight.scale)
        np.testing.assert_array_equal(x.qweight.zero_point, y.qweight.zero_point)
        np.testing.assert_array_equal(np.asarray(x.bias), np.asarray(y.bias))


@pytest.mark.task("16.11")
@settings(max_examples=15)
@given(sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99]), seed=st.integers(0, 5), kind=st.sampled_from(["mlp", "cnn"]))
def test_save_then_load_is_bit_exact(tmp_path_factory, sparsity, seed, kind):
    model = make_mlp(seed=seed) if kind == "mlp" else make_cnn(seed=seed)
    compressed = prune_and_quantize(model, sparsity)
    path = tmp_path_factory.mktemp("saved") / "model.ttz"
    written = save_compressed(compressed, path)
    assert written == os.path.getsize(path) == compressed_size(compressed).file_bytes
    loaded = load_compressed(path)
    assert isinstance(loaded, CompressedModel) and isinstance(loaded, Module)
    _same_quantized(compressed, loaded)
    x = Tensor(np.random.default_rng(seed).standard_normal((3, 8) if kind == "mlp" else (3, 1, 8, 8)))
    compressed.eval(), loaded.eval()
    np.testing.assert_array_equal(compressed(x).data, loaded(x).data)


@pytest.mark.task("16.12")
def test_prune_and_quantize_keeps_input_and_zeros(cnn):
    before = {n: p.data.copy() for n, p in cnn.named_parameters()}
    compressed = prune_and_quantize(cnn, 0.8)
    for n, p in cnn.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])
    pruned = make_cnn()
    magnitude_prune(pruned, 0.8)
    floats = [m for _, m in pruned.named_modules() if type(m).__name__ in ("Linear", "Conv2d")]
    for float_layer, (_, q) in zip(floats, quantized_layers(compressed)):
        assert q.qweight.values.dtype == np.int8
        np.testing.assert_array_equal(q.qweight.values == 0, float_layer.weight.data == 0)
    report = compressed.size_report()
    zeros = sum(l.params - l.nonzero for l in report.layers)
    assert zeros == round(0.8 * sum(l.params for l in report.layers))


@pytest.mark.task("16.11")
def test_report_counts_bytes_per_layer(mlp):
    compressed = prune_and_quantize(mlp, 0.5)
    report = compressed_size(compressed)
    for layer, (_, q) in zip(report.layers, quantized_layers(compressed)):
        v = q.qweight.values
        nnz = int(np.count_nonzero(v))
        assert (layer.params, layer.nonzero) == (v.size, nnz)
        assert layer.total("dense_fp32") == 4 * v.size + 4 * v.shape[0]
        assert layer.total("bitmask_int8") == (v.size + 7) // 8 + nnz + q.qweight.scale.nbytes + 4 * v.shape[0]
        assert layer.total("gaps_int8") == gap_code(v.reshape(-1) != 0).nbytes + nnz + q.qweight.scale.nbytes + 4 * v.shape[0]
    assert report.total("dense_fp32") == sum(p.data.nbytes for p in mlp.parameters())
    assert "file written by save_compressed" in str(report)
    with pytest.raises(ValueError, match="fmt must be one of"):
        report.total("zip")


def _saved(tmp_path):
    path = tmp_path / "m.ttz"
    save_compressed(prune_and_quantize(make_mlp(), 0.9), path)
    return path


@pytest.mark.task("16.11")
def test_truncated_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    blob = path.read_bytes()
    for cut in (len(blob) - 1, len(blob) // 2, 45, 3, 0):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=str(path)):
            load_compressed(path)


@pytest.mark.task("16.11")
def test_tampered_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    blob = bytearray(path.read_bytes())
    for where in (len(blob) - 5, 10, 40):
        bad = bytearray(blob)
        bad[where] ^= 0x5A
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="checksum|truncated or corrupt|codec|version|magic"):
            load_compressed(path)


def test_foreign_files_are_refused_without_unpickling(tmp_path):
    pickled = tmp_path / "evil.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (pickled, text):
        with pytest.raises(ValueError, match="not a TinyTorch compressed model"):
            load_compressed(path)


@pytest.mark.task("16.11")
def test_unknown_layer_writes_nothing(tmp_path):
    class Odd(Module):
        def forward(self, x):
            return x

    model = Sequential(make_mlp()[0], Odd())
    path = tmp_path / "odd.ttz"
    with pytest.raises(ValueError, match="cannot store a Odd layer"):
        save_compressed(prune_and_quantize(model, 0.5), path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.task("16.12")
def test_prune_and_quantize_errors(mlp):
    with pytest.raises(TypeError, match="got str"):
        prune_and_quantize("model", 0.5)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune_and_quantize(mlp, 1.5)
