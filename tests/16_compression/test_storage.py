"""Tasks 16.9-16.10: honest sizes, the sparse INT8 file, pruning + quantization."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import (CompressedModel, compressed_size, format_bytes, load_compressed,
                                   magnitude_prune, prune_and_quantize, save_compressed)
from tinytorch.compression.sizes import gap_code, gap_positions
from tinytorch.core.layers import Module, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

from .conftest import make_cnn, make_mlp


def quantized_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantizedLinear, QuantizedConv2d))]


@pytest.mark.task("16.9")
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


@pytest.mark.task("16.10")
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


@pytest.mark.task("16.10")
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


@pytest.mark.task("16.10")
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


@pytest.mark.task("16.10")
def test_truncated_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    blob = path.read_bytes()
    for cut in (len(blob) - 1, len(blob) // 2, 45, 3, 0):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=str(path)):
            load_compressed(path)


@pytest.mark.task("16.10")
def test_tampered_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    blob = bytearray(path.read_bytes())
    for where in (len(blob) - 5, 10, 40):
        bad = bytearray(blob)
        bad[where] ^= 0x5A
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="checksum|truncated or corrupt|codec|version|magic|malformed"):
            load_compressed(path)


def test_foreign_files_are_refused_without_unpickling(tmp_path):
    pickled = tmp_path / "evil.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (pickled, text):
        with pytest.raises(ValueError, match="not a TinyTorch compressed model"):
            load_compressed(path)


@pytest.mark.task("16.10")
def test_unknown_layer_writes_nothing(tmp_path):
    class Odd(Module):
        def forward(self, x):
            return x

    model = Sequential(make_mlp()[0], Odd())
    path = tmp_path / "odd.ttz"
    with pytest.raises(ValueError, match="cannot store a Odd layer"):
        save_compressed(prune_and_quantize(model, 0.5), path)
    assert list(tmp_path.iterdir()) == []


def test_prune_and_quantize_errors(mlp):
    with pytest.raises(TypeError, match="got str"):
        prune_and_quantize("model", 0.5)
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        prune_and_quantize(mlp, 1.5)


# ---- float layers: stored value for value, sparse when that is smaller ---------------

def _read_back(payload):
    """The arrays of a payload, as a file's reader sees them."""
    return [np.frombuffer(part, dtype).reshape(shape) for part, (dtype, *shape) in zip(payload.parts, payload.arrays)]


@settings(max_examples=40)
@given(rows=st.integers(1, 30), cols=st.integers(1, 200), density=st.floats(0, 1), seed=st.integers(0, 99))
def test_float_weights_round_trip_in_the_smallest_encoding(rows, cols, density, seed):
    from tinytorch.compression.encodings import decode_float, encode_float, Payload

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    w[rng.random(w.shape) >= density] = 0.0
    payload = Payload()
    spec = encode_float(w, payload)
    n, nnz = w.size, int(np.count_nonzero(w))
    sizes = {"dense": 4 * n, "bitmask": (n + 7) // 8 + 4 * nnz, "gaps": gap_code(w.reshape(-1) != 0).size + 4 * nnz}
    if n > 256 * sizes["gaps"]:  # a gap code may stand for at most 256 weights per byte
        del sizes["gaps"]
    best = min(sizes, key=sizes.get)
    assert (spec if best == "dense" else spec["encoding"]) == (0 if best == "dense" else best)
    assert payload.size == sum(len(p) for p in payload.parts) == min(sizes.values())
    arrays = _read_back(payload)
    back = decode_float(spec, arrays)
    assert back.dtype == np.float32 and back.shape == w.shape
    assert back.tobytes() == w.tobytes()  # bit for bit (no -0.0 here)


def test_a_negative_zero_comes_back_as_the_same_number():
    from tinytorch.compression.encodings import decode_float, encode_float, Payload

    w = np.zeros((4, 64), np.float32)
    w[0, 0], w[1, 5], w[2, 7] = 1.5, -0.0, -2.0
    payload = Payload()
    spec = encode_float(w, payload)
    assert spec["encoding"] == "gaps"
    arrays = _read_back(payload)
    back = decode_float(spec, arrays)
    assert np.array_equal(back, w) and back[1, 5] == 0.0


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_pruned_float_models_round_trip_and_shrink(tmp_path, sparsity, kind):
    model = make_mlp((32, 64, 64, 10), seed=2) if kind == "mlp" else make_cnn(seed=2, channels=(8, 16))
    magnitude_prune(model, sparsity)
    path = tmp_path / "float.ttz"
    written = save_compressed(model, path)
    loaded = load_compressed(path)
    for (name, p), (_, q) in zip(model.named_parameters() + model.named_buffers(),
                                 loaded.named_parameters() + loaded.named_buffers()):
        assert q.data.dtype == np.float32 and np.array_equal(p.data, q.data), name
    x = Tensor(np.random.default_rng(0).standard_normal((3, 32) if kind == "mlp" else (3, 1, 8, 8)))
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(model(x).data, loaded(x).data)
    dense_bytes = 4 * sum(p.data.size for p in model.parameters())
    if sparsity >= 0.9:  # 4 bytes per survivor plus about one byte of position each
        assert written < (1 - sparsity) * 5.5 * dense_bytes / 4 + 2000
    assert written < dense_bytes + 2000


def test_files_of_format_version_1_still_load():
    data = os.path.join(os.path.dirname(__file__), "data")
    cnn = make_cnn(seed=7)
    magnitude_prune(cnn, 0.5)
    loaded = load_compressed(os.path.join(data, "format1_float_cnn.ttz"))
    for (name, p), (_, q) in zip(cnn.named_parameters() + cnn.named_buffers(),
                                 loaded.named_parameters() + loaded.named_buffers()):
        assert np.array_equal(p.data, q.data), name
    expected = prune_and_quantize(make_mlp(seed=7), 0.75)
    _same_quantized(expected, load_compressed(os.path.join(data, "format1_int8_mlp.ttz")))


def test_files_of_format_version_2_still_load():
    """Version 2 (a JSON description), written by the previous release: shared and INT8 layers."""
    from tinytorch.compression.container import to_bytes

    data = os.path.join(os.path.dirname(__file__), "data")
    mlp = prune_and_quantize(make_mlp((16, 32, 24, 5), seed=7), 0.85, bits=3, codebook="kmeans")
    cnn = prune_and_quantize(make_cnn(seed=7), 0.5)
    for name, model, shape in (("format2_shared_mlp.ttz", mlp, (3, 16)), ("format2_int8_cnn.ttz", cnn, (3, 1, 8, 8))):
        path = os.path.join(data, name)
        with open(path, "rb") as f:
            assert f.read(6) == b"TTZIP\x02"
        loaded = load_compressed(path)
        x = Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
        model.eval(), loaded.eval()
        np.testing.assert_array_equal(loaded(x).data, model(x).data)
        assert to_bytes(loaded) == to_bytes(model), name  # the same model, written again as version 4


def test_an_unknown_format_version_is_refused_by_number(tmp_path):
    path = _saved(tmp_path)
    blob = bytearray(path.read_bytes())
    assert blob[:6] == b"TTZIP\x04"
    blob[5] = 5
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="has format version 5, this TinyTorch reads versions 1, 2, 3 and 4"):
        load_compressed(path)


def test_a_saved_file_gets_the_usual_mode(tmp_path):
    umask = os.umask(0o027)
    try:
        path = tmp_path / "new.ttz"
        save_compressed(make_mlp(), path)
        assert path.stat().st_mode & 0o777 == 0o640  # 0666 less the umask, as open() would give
        os.chmod(path, 0o604)
        save_compressed(make_mlp(), path)
        assert path.stat().st_mode & 0o777 == 0o604  # a replaced file keeps its mode
    finally:
        os.umask(umask)


# ---- calibrated models, failed saves, symbolic links --------------------------------

@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_a_calibrated_model_round_trips_bit_exact_and_runs(tmp_path, kind):
    from tinytorch.core.layers import Linear

    rng = np.random.default_rng(4)
    if kind == "mlp":
        model, x = Sequential(Linear(8, 4)), rng.standard_normal((6, 8)).astype(np.float32)
    else:
        model, x = make_cnn(seed=4), rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    compressed = prune_and_quantize(model, 0.5, calibration_data=x)
    path = tmp_path / "c.ttz"
    save_compressed(compressed, path)
    loaded = load_compressed(path)
    for (_, a), (_, b) in zip(quantized_layers(compressed), quantized_layers(loaded)):
        assert a.input_scale is not None and isinstance(b.input_scale, np.float32)
        assert np.asarray(b.input_scale).shape == () and b.input_scale == a.input_scale
    compressed.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(Tensor(x)).data, compressed(Tensor(x)).data)
    assert load_compressed(path).size_report().file_bytes == os.path.getsize(path)


def test_a_scale_stored_with_shape_1_by_an_older_writer_still_loads(tmp_path):
    from tinytorch.compression.container import from_bytes, to_bytes
    from tinytorch.core.layers import Linear

    x = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    compressed = prune_and_quantize(Sequential(Linear(8, 4)), 0.5, calibration_data=x)
    layer = quantized_layers(compressed)[0][1]
    layer.input_scale = np.asarray(layer.input_scale).reshape(1)  # what the old writer stored
    loaded = from_bytes(to_bytes(compressed))
    assert quantized_layers(loaded)[0][1].input_scale.shape == ()
    layer.input_scale = layer.input_scale[0]
    np.testing.assert_array_equal(loaded(Tensor(x)).data, compressed(Tensor(x)).data)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    import tinytorch.compression.container as container

    model = prune_and_quantize(make_mlp(), 0.5)
    path = tmp_path / "m.ttz"
    save_compressed(model, path)
    before = path.read_bytes()
    for where, error in (("replace", OSError("disk full")), ("replace", KeyboardInterrupt()),
                         ("chmod", KeyboardInterrupt())):
        def fail(*args, _error=error, **kwargs):
            raise _error

        with monkeypatch.context() as m:
            m.setattr(container.os, where, fail)
            with pytest.raises(type(error)):
                save_compressed(model, path)
        assert _leftovers(tmp_path) == [] and path.read_bytes() == before, where
    with monkeypatch.context() as m:  # a failure inside to_bytes: before any file exists
        m.setattr(container, "describe", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            save_compressed(model, tmp_path / "new.ttz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ttz"]


def test_saving_through_a_symbolic_link_writes_its_target(tmp_path):
    target = tmp_path / "store" / "model.ttz"
    target.parent.mkdir()
    link = tmp_path / "latest.ttz"
    link.symlink_to(target)  # dangling at first: the save creates the target
    model = prune_and_quantize(make_mlp(), 0.5)
    save_compressed(model, link)
    assert link.is_symlink() and target.is_file()
    save_compressed(prune_and_quantize(make_mlp(seed=1), 0.5), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    _same_quantized(prune_and_quantize(make_mlp(seed=1), 0.5), load_compressed(target))
    assert _leftovers(target.parent) == [] and _leftovers(tmp_path) == []


def test_from_bytes_refuses_what_load_compressed_refuses():
    from tinytorch.compression.container import from_bytes

    for blob in (b"", b"TTZIP", b"TTZIP\x02\x00" + bytes(16) + b'\x1b\x00\x00\x00{"model": [], "arrays": []}',
                 b"TTZIP\x03\x00" + bytes(16) + b"\x05\x92\xa0\x80\xa1\x80"):
        with pytest.raises(ValueError, match="bad magic|checksum|JSON object"):
            from_bytes(blob)


def test_loading_builds_no_random_weights_and_leaves_the_random_stream_alone(tmp_path):
    import tracemalloc

    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import get_rng, manual_seed

    model = make_cnn(seed=8)
    magnitude_prune(model, 0.5)
    path = tmp_path / "float.ttz"
    save_compressed(model, path)
    manual_seed(3)
    expected = get_rng().random(4)
    manual_seed(3)
    loaded = load_compressed(path)
    np.testing.assert_array_equal(get_rng().random(4), expected)
    assert [type(m) for m in loaded.model] == [type(m) for m in model]
    assert loaded.model[0].kernel_size == (3, 3) and loaded.model[-1].in_features == model[-1].in_features
    # A large sparse layer costs its dense float32 weight and a mask, not a random
    # float64 draw of the full size first (which alone is twice the weight), nor a
    # 64 MiB LZMA dictionary for a file of 150 kB.
    big = Sequential(Linear(2000, 2000))
    magnitude_prune(big, 0.99)
    save_compressed(big, path)
    tracemalloc.start()
    try:
        load_compressed(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    weight = 4 * 2000 * 2000
    assert peak < 1.75 * weight, peak / weight  # the weight, its mask, a small LZMA window


@pytest.mark.parametrize("sparsity", [0.999, 0.9999])
def test_very_sparse_layers_round_trip_csr_and_bitmask_included(tmp_path, sparsity):
    from tinytorch.compression.container import to_bytes
    from tinytorch.core.layers import Linear

    model = Sequential(Linear(2000, 1000))
    compressed = prune_and_quantize(model, sparsity)
    blob = to_bytes(compressed)
    stored = blob[23:] if blob[6] == 0 else None  # codec "none": the description can be read from the file
    path = tmp_path / "sparse.ttz"
    assert save_compressed(compressed, path) == len(blob)
    loaded = load_compressed(path)
    _same_quantized(compressed, loaded)
    if stored is not None:
        from tinytorch.compression.description import decode_tree
        from tinytorch.compression.entropy import ByteReader

        reader = ByteReader(stored, "file")
        meta = decode_tree(reader.take(reader.varint(1 << 20)))
        assert meta["model"]["layers"][0]["weight"]["encoding"] in ("csr", "bitmask", "gaps")
    magnitude_prune(model, sparsity)
    save_compressed(model, tmp_path / "float.ttz")
    back = load_compressed(tmp_path / "float.ttz")
    assert all(np.array_equal(a.data, b.data) for a, b in zip(model.parameters(), back.parameters()))


def test_the_csr_encoding_is_written_and_read_back():
    from tinytorch.compression.encodings import Payload, _stored_values, encode_weights
    from tinytorch.quantization import quantize_int8

    rng = np.random.default_rng(2)
    w = np.zeros((1000, 2000), np.float32)
    w[np.arange(1000), rng.integers(0, 2000, 1000)] = rng.standard_normal(1000)
    w[np.arange(1000), rng.integers(0, 2000, 1000)] = rng.standard_normal(1000)
    q = quantize_int8(w, axis=0)
    payload = Payload()
    spec = encode_weights(q, payload)
    assert spec["encoding"] == "csr"
    np.testing.assert_array_equal(_stored_values(spec, _read_back(payload), np.int8), q.values)
