"""Weight sharing (k-means codebooks, centroid fine-tuning) and entropy coding in the file."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import (CompressedModel, compressed_size, load_compressed, magnitude_prune,
                                   prune_and_quantize, save_compressed)
from tinytorch.compression.container import from_bytes, to_bytes
from tinytorch.compression.entropy import (ARITHMETIC, HUFFMAN, arithmetic_decode, arithmetic_encode,
                                           canonical_codes, decode_layer_stream, encode_layer_stream,
                                           entropy_bits, gap_symbols, gaps_from_symbols, huffman_decode,
                                           huffman_encode, huffman_lengths, mask_entropy_bits)
from tinytorch.compression.sharing import (SharedConv2d, SharedLinear, centroid_gradients, fine_tune_centroids,
                                           kmeans_codebook, share_weights, shared_layers)
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.tensor import Tensor

from .conftest import make_cnn, make_mlp


def reference_kmeans(values, k, iterations=100):
    """Lloyd's algorithm by brute force: distances to every centroid, argmin, means."""
    values = np.asarray(values, np.float64)
    centroids = np.linspace(values.min(), values.max(), k)
    codes = np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1)
    for _ in range(iterations):
        for j in range(k):
            if np.any(codes == j):
                centroids[j] = values[codes == j].mean()
        new = np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1)
        if np.array_equal(new, codes):
            break
        codes = new
    return centroids, codes


def pruned_mlp(sparsity=0.8, seed=0):
    model = make_mlp((16, 32, 24, 5), seed)
    magnitude_prune(model, sparsity)
    return model


# ----------------------------------------------------------------------------- k-means


@given(seed=st.integers(0, 10_000), bits=st.integers(1, 5), n=st.integers(2, 300))
@settings(max_examples=40, deadline=None)
def test_kmeans_matches_numpy_reference(seed, bits, n):
    values = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    centroids, codes = kmeans_codebook(values, bits)
    ref_centroids, ref_codes = reference_kmeans(values, 1 << bits)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_allclose(centroids, ref_centroids.astype(np.float32), rtol=1e-6, atol=1e-7)
    assert codes.dtype == np.uint8 and codes.max() < 1 << bits and centroids.shape == (1 << bits,)


def test_kmeans_linear_init_keeps_extremes_reachable():
    values = np.concatenate([np.full(1000, 0.01), [5.0]]).astype(np.float32)
    centroids, codes = kmeans_codebook(values, 2)
    assert centroids.max() == pytest.approx(5.0) and codes[-1] == np.argmax(centroids)


@pytest.mark.parametrize("bits", [0, 9, 2.0, True, None])
def test_kmeans_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        kmeans_codebook(np.ones(4), bits)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_shared_model_keeps_zeros_and_codes_in_range(bits):
    model = pruned_mlp()
    zeros = {name: m.weight.data == 0 for name, m in model.named_modules() if isinstance(m, Linear)}
    shared = share_weights(model, bits)
    for name, layer in shared_layers(shared):
        w = layer.weight.data
        assert np.all(w[zeros[name]] == 0), name
        assert layer.codes.max(initial=0) < 1 << bits
        np.testing.assert_array_equal(w.reshape(-1)[layer.positions], layer.centroids.data[layer.codes])
        assert not w.flags.writeable


def test_shared_output_is_the_float_layer_with_centroid_weights():
    model = pruned_mlp()
    shared = prune_and_quantize(model, sparsity=None, bits=3, codebook="kmeans")
    x = Tensor(np.random.default_rng(1).standard_normal((7, 16)).astype(np.float32))
    for (_, layer), (_, float_layer) in zip(shared_layers(shared), [(n, m) for n, m in model.named_modules()
                                                                     if isinstance(m, Linear)]):
        twin = Linear(layer.in_features, layer.out_features)
        twin.weight.data[...] = layer.weight.data
        twin.bias.data[...] = layer.bias.data
        h = x if layer.in_features == 16 else Tensor(np.abs(np.random.default_rng(2).standard_normal(
            (7, layer.in_features))).astype(np.float32))
        np.testing.assert_array_equal(layer(h).data, twin(h).data)
        assert np.count_nonzero(layer.weight.data) <= np.count_nonzero(float_layer.weight.data)


def test_prune_and_quantize_checks_bits_and_codebook():
    model = pruned_mlp()
    for kwargs, message in (({"bits": 4}, "codebook='linear'"), ({"codebook": "huffman"}, "codebook must be"),
                            ({"bits": 9, "codebook": "kmeans"}, "bits must be")):
        with pytest.raises(ValueError, match=message):
            prune_and_quantize(model, 0.5, **kwargs)
    linear = prune_and_quantize(model, 0.5, bits=8, codebook="linear")
    assert to_bytes(linear) == to_bytes(prune_and_quantize(model, 0.5))  # INT8 as before


# ----------------------------------------------------------------------------- centroid fine-tuning


def test_centroid_gradient_is_the_summed_weight_gradient():
    model = pruned_mlp()
    shared = share_weights(model, 3)
    layer = shared_layers(shared)[0][1]
    twin = Linear(layer.in_features, layer.out_features)
    twin.weight.data[...] = layer.weight.data
    twin.bias.data[...] = layer.bias.data
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((5, layer.in_features)).astype(np.float32))
    upstream = rng.standard_normal((5, layer.out_features)).astype(np.float32)
    for m in (layer, twin):
        (m(x) * Tensor(upstream)).sum().backward()
    k = layer.centroids.data.size
    expected = np.array([twin.weight.grad.reshape(-1)[layer.positions][layer.codes == j].sum() for j in range(k)])
    np.testing.assert_allclose(layer.centroids.grad, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(centroid_gradients(twin.weight.grad, layer.positions, layer.codes, k), expected,
                               rtol=1e-5, atol=1e-6)


def test_fine_tune_centroids_moves_centroids_only_and_holds_masks(digits):
    from tinytorch.data.loader import DataLoader, TensorDataset

    x_train, y_train, x_test, y_test = digits
    model = make_mlp((64, 32, 10), 0)
    magnitude_prune(model, 0.8)
    shared = prune_and_quantize(model, sparsity=None, bits=2, codebook="kmeans", int8_bias=True)
    before = {name: (layer.positions.copy(), layer.codes.copy(), layer.centroids.data.copy(), layer.bias.data.copy())
              for name, layer in shared_layers(shared)}
    loader = DataLoader(TensorDataset(x_train[:256], y_train[:256]), batch_size=64, shuffle=True, seed=0)
    loss_before = CrossEntropyLoss()(shared(Tensor(x_train[:256])), y_train[:256]).data
    fine_tune_centroids(shared, CrossEntropyLoss(), loader, epochs=3, lr=1e-2, progress=False)
    loss_after = CrossEntropyLoss()(shared(Tensor(x_train[:256])), y_train[:256]).data
    assert loss_after < loss_before
    for name, layer in shared_layers(shared):
        positions, codes, centroids, bias = before[name]
        np.testing.assert_array_equal(layer.positions, positions)
        np.testing.assert_array_equal(layer.codes, codes)
        np.testing.assert_array_equal(layer.bias.data, bias)  # biases stay as stored (int8-exact)
        assert not np.array_equal(layer.centroids.data, centroids)
        mask = np.zeros(layer.weight.data.size, bool)
        mask[positions] = True
        assert np.all(layer.weight.data.reshape(-1)[~mask] == 0)
        assert layer.bias.requires_grad  # unfrozen again after fine-tuning


def test_fine_tune_centroids_needs_shared_layers(digits):
    with pytest.raises(ValueError, match="no shared-weight layer"):
        fine_tune_centroids(make_mlp(), CrossEntropyLoss(), [], 1)


# ----------------------------------------------------------------------------- entropy coding


@given(counts=st.lists(st.integers(0, 10_000), min_size=1, max_size=300))
@settings(max_examples=60, deadline=None)
def test_huffman_lengths_form_a_prefix_code_near_entropy(counts):
    counts = np.asarray(counts)
    lengths = huffman_lengths(counts)
    assert np.all((lengths > 0) == (counts > 0)) and lengths.max(initial=0) <= 15
    used = np.flatnonzero(lengths)
    if used.size > 1:
        assert (2.0 ** -lengths[used].astype(float)).sum() == 1.0  # complete (Kraft equality)
        codes = canonical_codes(lengths)
        words = {format(int(codes[s]), f"0{lengths[s]}b") for s in used}
        assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free
        total = counts.sum()
        entropy = -(counts[used] * np.log2(counts[used] / total)).sum()
        if lengths.max() < 15:  # no length limit was needed: Huffman is within 1 bit per symbol
            assert entropy <= (counts * lengths).sum() <= entropy + total


@given(data=st.data(), k=st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_huffman_round_trip(data, k):
    symbols = np.asarray(data.draw(st.lists(st.integers(0, k - 1), max_size=300)), np.int64)
    lengths = huffman_lengths(np.bincount(symbols, minlength=k))
    stream = huffman_encode(symbols, lengths)
    np.testing.assert_array_equal(huffman_decode(stream, lengths, symbols.size, "t"), symbols)


@given(data=st.data(), ks=st.lists(st.integers(1, 40), min_size=1, max_size=3))
@settings(max_examples=60, deadline=None)
def test_arithmetic_round_trip(data, ks):
    n = data.draw(st.integers(0, 300))
    columns = [np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.int64) for k in ks]
    stream = arithmetic_encode(list(zip(columns, ks)))
    for got, want in zip(arithmetic_decode(stream, ks, n, "t"), columns):
        np.testing.assert_array_equal(got, want)


@given(seed=st.integers(0, 10_000), n=st.integers(1, 5000), density=st.floats(0, 1), bits=st.integers(1, 8),
       coder=st.sampled_from([HUFFMAN, ARITHMETIC, None]))
@settings(max_examples=60, deadline=None)
def test_layer_stream_round_trip(seed, n, density, bits, coder):
    rng = np.random.default_rng(seed)
    positions = np.flatnonzero(rng.random(n) < density)
    codes = rng.integers(0, 1 << bits, positions.size)
    stream = encode_layer_stream(positions, codes, n, 1 << bits, coder)
    got_positions, got_codes = decode_layer_stream(stream, n, 1 << bits)
    np.testing.assert_array_equal(got_positions, positions)
    np.testing.assert_array_equal(got_codes, codes)


@given(gaps=st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_gap_symbols_round_trip(gaps):
    symbol, extra, width = gap_symbols(np.asarray(gaps, np.int64))
    assert np.all(extra < (1 << width)) and symbol.max(initial=0) < 66
    np.testing.assert_array_equal(gaps_from_symbols(symbol, extra), gaps)


@pytest.mark.parametrize("density", [0.03, 0.1, 0.3])
def test_layer_stream_is_near_its_entropy(density):
    rng = np.random.default_rng(0)
    n = 20_000
    positions = np.flatnonzero(rng.random(n) < density)
    codes = np.minimum(rng.geometric(0.35, positions.size) - 1, 15)
    bound = (mask_entropy_bits(n, positions.size) + entropy_bits(codes)) / 8
    size = len(encode_layer_stream(positions, codes, n, 16))
    assert bound <= size <= 1.06 * bound, (size, bound)


def test_entropy_formulas():
    assert entropy_bits([1, 1, 2, 2]) == 4.0 and entropy_bits([]) == 0.0 and entropy_bits([3, 3]) == 0.0
    assert mask_entropy_bits(8, 4) == 8.0 and mask_entropy_bits(8, 0) == 0.0


def corrupt_variants(stream: bytes):
    yield stream[:-1]
    yield stream + b"\x00"
    for i in range(len(stream)):
        for flip in (0x01, 0x80, 0xFF):
            yield stream[:i] + bytes([stream[i] ^ flip]) + stream[i + 1:]


@pytest.mark.parametrize("coder", [HUFFMAN, ARITHMETIC])
def test_corrupt_layer_streams_raise_value_error_or_decode_in_range(coder):
    rng = np.random.default_rng(3)
    n = 400
    positions = np.flatnonzero(rng.random(n) < 0.2)
    codes = rng.integers(0, 8, positions.size)
    stream = encode_layer_stream(positions, codes, n, 8, coder)
    refused = 0
    for bad in corrupt_variants(stream):
        try:
            p, c = decode_layer_stream(bad, n, 8)
        except ValueError:
            refused += 1
            continue
        # NOTE: some flips give another valid stream (the file's checksum catches those); what
        # decodes must still describe a layer of n weights.
        assert p.size == c.size and (p.size == 0 or (p[-1] < n and np.all(np.diff(p) > 0))) and c.max(initial=0) < 8
    assert refused > 0


@pytest.mark.parametrize("stream", [b"", b"\xff\xff\xff\xff\xff\xff", b"\x03", b"\x02\xff\x00",
                                    bytes([0xC8, 0x01, 0x01, 0x05]) + b"\x00" * 4])
def test_malformed_layer_streams_are_refused(stream):
    with pytest.raises(ValueError):
        decode_layer_stream(stream, 100, 4)


def test_malformed_code_lengths_are_refused():
    for lengths in ([3, 3], [16, 1, 1], [2, 0]):
        with pytest.raises(ValueError, match="code"):
            huffman_decode(b"\x00", np.array(lengths), 1, "t")


# ----------------------------------------------------------------------------- the file


@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_shared_mlp_file_reads_back_bit_exact(tmp_path, bits):
    shared = prune_and_quantize(make_mlp((16, 32, 24, 5)), 0.85, bits=bits, codebook="kmeans", int8_bias=bits < 5)
    path = tmp_path / "m.ttz"
    size = save_compressed(shared, path)
    loaded = load_compressed(path)
    assert size == path.stat().st_size == len(to_bytes(loaded))
    for (name, a), (_, b) in zip(shared_layers(shared), shared_layers(loaded)):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.centroids.data, b.centroids.data)
        np.testing.assert_array_equal(a.bias.data, b.bias.data)
    x = Tensor(np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32))
    np.testing.assert_array_equal(loaded(x).data, shared(x).data)


def test_shared_cnn_file_reads_back_bit_exact():
    model = make_cnn()
    shared = prune_and_quantize(model, 0.7, bits=4, codebook="kmeans")
    assert any(isinstance(m, SharedConv2d) for _, m in shared.named_modules())
    loaded = from_bytes(to_bytes(shared))
    x = Tensor(np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32))
    shared.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(x).data, shared(x).data)


def test_corrupt_shared_file_is_refused():
    blob = to_bytes(prune_and_quantize(make_mlp((16, 32, 24, 5)), 0.85, bits=3, codebook="kmeans"))
    for bad in (blob[:-3], blob[:30] + bytes([blob[30] ^ 0x10]) + blob[31:]):
        with pytest.raises(ValueError):
            from_bytes(bad)


def test_tampered_shared_description_is_refused():
    """A stream altered under a valid checksum: the decoder's own checks refuse it."""
    from tinytorch.compression import container
    from tinytorch.compression.description import describe, encode_tree
    from tinytorch.compression.encodings import Payload
    from tinytorch.compression.entropy import varint

    shared = prune_and_quantize(make_mlp((16, 32, 24, 5)), 0.85, bits=3, codebook="kmeans")
    payload = Payload()
    meta = {"model": describe(shared.model, payload), "arrays": payload.arrays}
    first = meta["model"]["layers"][0]["shared"]
    parts = list(payload.parts)
    parts[first] = parts[first][:-2]  # a truncated layer stream
    meta["arrays"][first][1] -= 2
    description = encode_tree(meta)
    body = varint(len(description)) + description + b"".join(parts)
    blob = container.MAGIC + bytes([0]) + container._digest(body) + body
    with pytest.raises(ValueError, match="shared"):
        from_bytes(blob)


def test_old_files_still_load():
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "data").glob("*.ttz")):
        assert isinstance(load_compressed(path), CompressedModel)


# ----------------------------------------------------------------------------- the size report


def test_size_report_gives_the_entropy_bound():
    shared = prune_and_quantize(make_mlp((16, 32, 24, 5)), 0.85, bits=3, codebook="kmeans", int8_bias=True)
    report = compressed_size(shared)
    bound = report.entropy_bound
    expected = {"positions": 0.0, "values": 0.0, "tables": 0.0, "biases": 0.0}
    gaps = 0.0
    for _, layer in shared_layers(shared):
        n, nnz = layer.weight.data.size, layer.codes.size
        p = nnz / n
        mask_bits = -n * (p * np.log2(p) + (1 - p) * np.log2(1 - p))
        expected["positions"] += mask_bits / 8
        counts = np.bincount(layer.codes)
        counts = counts[counts > 0]
        expected["values"] += -(counts * np.log2(counts / nnz)).sum() / 8
        expected["tables"] += 4 * 8
        expected["biases"] += layer.bias.data.size + 4
        g = np.diff(layer.positions, prepend=-1) - 1
        _, gc = np.unique(g, return_counts=True)
        gaps += max(0.0, mask_bits + (gc * np.log2(gc / nnz)).sum()) / 8
    for key, value in expected.items():
        assert bound[key] == pytest.approx(value), key
    assert bound["total"] == pytest.approx(sum(expected.values()))
    assert bound["total_gaps"] == pytest.approx(bound["total"] - gaps)
    assert report.bound_ratio() == report.file_bytes / bound["total"]
    assert "entropy bound" in str(report)


def test_int8_model_bound_counts_its_int8_values():
    small = prune_and_quantize(make_mlp((16, 32, 24, 5)), 0.8, per_channel=False, int8_bias=True)
    bound = compressed_size(small).entropy_bound
    values = 0.0
    for _, m in small.named_modules():
        if hasattr(m, "qweight"):
            v = m.qweight.values[m.qweight.values != 0]
            _, counts = np.unique(v, return_counts=True)
            values += -(counts * np.log2(counts / v.size)).sum() / 8
    assert bound["values"] == pytest.approx(values)
    assert bound["tables"] == 3 * 4  # one scale per layer


def test_shared_conv_computes_the_conv_of_its_weight():
    from tinytorch.core.spatial import Conv2d

    model = _wrap(make_cnn()[0])
    magnitude_prune(model, 0.5)
    shared = share_weights(model, 3)
    layer = shared_layers(shared)[0][1]
    twin = Conv2d(1, layer.out_channels, 3, padding=1)
    twin.weight.data[...] = layer.weight.data
    twin.bias.data[...] = layer.bias.data
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    np.testing.assert_array_equal(layer(x).data, twin(x).data)


def _wrap(layer):
    from tinytorch.core.layers import Sequential

    return Sequential(layer)


def test_forged_sizes_are_refused_before_allocation():
    from tinytorch.compression.entropy import varint
    from tinytorch.compression.sharing import MAX_SHARED_WEIGHTS, decode_shared

    huge = np.frombuffer(b"".join([varint(2), varint(1 << 20), varint(1 << 20), bytes([2, 0])]), np.uint8)
    with pytest.raises(ValueError, match="at most"):
        decode_shared({"type": "Linear", "shared": 0}, [huge])
    assert (1 << 20) ** 2 > MAX_SHARED_WEIGHTS
    # an arithmetic stream claiming more positions than the writer ever codes that way
    many = varint(2 * 30_000 + ARITHMETIC) + varint(1) + varint(1) + b"\x00"
    with pytest.raises(ValueError, match="arithmetic"):
        decode_layer_stream(many, 100_000, 4)


def test_share_weights_refuses_a_bare_layer():
    from tinytorch.compression.sharing import shared_layer

    with pytest.raises(TypeError, match="wrap this Linear"):
        share_weights(Linear(4, 3), 2)
    assert isinstance(shared_layer(Linear(4, 3), 2), SharedLinear)
    with pytest.raises(TypeError, match="float Linear or Conv2d"):
        shared_layer(shared_layer(Linear(4, 3), 2), 2)
