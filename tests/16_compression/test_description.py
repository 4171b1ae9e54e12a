"""The file's binary description of the layers (format version 3): round trips, size, refusals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import prune_and_quantize
from tinytorch.compression.container import from_bytes, to_bytes
from tinytorch.compression.description import WORDS, decode_tree, describe, encode_tree, rebuild
from tinytorch.compression.encodings import Payload
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Dropout, Linear, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

from .conftest import make_cnn, make_mlp

# JSON-like trees: what a description may hold
_leaves = (st.none() | st.booleans() | st.integers(-2**64 + 1, 2**64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.sampled_from(WORDS))
trees = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=20)
                     | st.dictionaries(st.text(max_size=8) | st.sampled_from(WORDS), inner, max_size=20), max_leaves=60)


@settings(max_examples=200)
@given(tree=trees)
def test_any_tree_round_trips_exactly(tree):
    back = decode_tree(encode_tree(tree))
    assert json.dumps(back) == json.dumps(tree)  # same values, same key order, ints stay ints


def test_the_encoding_is_pinned_byte_for_byte():
    """Version 3's bytes: a reader of old files depends on them never changing."""
    tree = {"model": {"type": "Linear", "shared": 0}, "arrays": [["uint8", 538]]}
    assert encode_tree(tree) == bytes([0x92, 0xA0, 0x92, 0xA2, 0xCA, 0xA5, 0x00, 0xA1, 0x81, 0x82, 0xB7,
                                       0xF3, 0x9A, 0x04])
    assert encode_tree([None, False, True, -1, 127, 128, 1.5, "é"]) == (
        bytes([0x88, 0xF0, 0xF1, 0xF2, 0xF4, 0x00, 0x7F, 0xF3, 0x80, 0x01, 0xF5]) + np.float64(1.5).astype("<f8").tobytes()
        + bytes([0xF6, 0x02]) + "é".encode())
    assert encode_tree(list(range(16)))[:2] == bytes([0xF7, 16])  # 16 items and more: a counted list


def _every_layer_kind():
    """Models that between them hold every kind of layer the file stores, each with an input."""
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    manual_seed(3)
    plain = Sequential(Conv2d(1, 3, 3, stride=1, padding=1), BatchNorm2d(3, eps=1e-3, momentum=0.2), Tanh(),
                       AvgPool2d(2, stride=2), Sigmoid(), MaxPool2d(2, 2, 0), GELU(), Dropout(0.25), Flatten(),
                       Sequential(Linear(12, 10, bias=False), ReLU()), Linear(10, 10), Softmax(dim=1))
    quantized = prune_and_quantize(make_cnn(seed=4), 0.5, calibration_data=x).model
    shared_cnn = prune_and_quantize(make_cnn(seed=5), 0.5, bits=3, codebook="kmeans").model
    shared_mlp = prune_and_quantize(make_mlp((10, 12, 10), seed=6), 0.6, bits=2, codebook="kmeans").model
    x_mlp = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    return [(plain, x), (quantized, x), (shared_cnn, x), (shared_mlp, x_mlp)]


def _kinds(model) -> set[str]:
    return {type(m).__name__ for _, m in model.named_modules()}


def test_every_layer_kind_round_trips_bit_exact():
    models = _every_layer_kind()
    kinds = set().union(*(_kinds(m) for m, _ in models))
    assert {"SharedLinear", "SharedConv2d", "QuantizedLinear", "QuantizedConv2d", "Linear", "Conv2d", "BatchNorm2d",
            "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Flatten", "Dropout", "MaxPool2d", "AvgPool2d"} <= kinds
    for model, x in models:
        payload = Payload()
        tree = {"model": describe(model, payload), "arrays": payload.arrays}
        assert decode_tree(encode_tree(tree)) == tree
        blob = to_bytes(model)
        loaded = from_bytes(blob)
        assert _kinds(loaded) == _kinds(model) | {"CompressedModel"}
        assert to_bytes(loaded) == blob  # every argument and array came back as it was
        model.eval(), loaded.eval()
        np.testing.assert_array_equal(loaded(Tensor(x)).data, model(Tensor(x)).data)
    bn = next(m for _, m in from_bytes(to_bytes(models[0][0])).named_modules() if isinstance(m, BatchNorm2d))
    assert (bn.eps, bn.momentum) == (1e-3, 0.2)


def test_rebuild_reads_the_tree_not_the_bytes():
    for model, x in _every_layer_kind():
        payload = Payload()
        spec = describe(model, payload)
        arrays = [np.frombuffer(p, d).reshape(s) for p, (d, *s) in zip(payload.parts, payload.arrays)]
        back = rebuild(spec, arrays)
        back.eval(), model.eval()
        np.testing.assert_array_equal(back(Tensor(x)).data, model(Tensor(x)).data)


def test_the_demo_mlp_description_is_a_few_dozen_bytes():
    """Version 2 spent 213 bytes of JSON on this; binary, each word and small number is one byte."""
    shared = prune_and_quantize(make_mlp((64, 128, 64, 10)), 0.95, bits=2, codebook="kmeans", int8_bias=True)
    payload = Payload()
    tree = {"model": describe(shared.model, payload), "arrays": payload.arrays}
    compact, text = encode_tree(tree), json.dumps(tree, separators=(",", ":")).encode()
    assert len(compact) <= 45 and len(text) >= 4 * len(compact), (len(compact), len(text))
    blob = to_bytes(shared)
    assert len(blob) <= 23 + 1 + len(compact) + payload.size  # header, length, description, arrays: nothing else


def test_every_truncation_and_trailing_byte_is_refused():
    model = Sequential(*(m for m, _ in _every_layer_kind()))  # a tree of every kind; it need not run
    payload = Payload()
    data = encode_tree({"model": describe(model, payload), "arrays": payload.arrays})
    for cut in range(len(data)):
        with pytest.raises(ValueError, match="truncated|above|claims"):
            decode_tree(data[:cut])
    with pytest.raises(ValueError, match="1 bytes after its end"):
        decode_tree(data + b"\x00")


def test_a_changed_byte_is_refused_or_decodes_to_a_tree():
    """Whatever a flipped bit makes of the bytes, decoding raises ValueError or gives JSON-like values.

    Many flips give another valid tree (a small number is a byte): the checksum refuses those in a
    file, and `rebuild` checks the tree (test_hostile_files mutates every value of one).
    """
    payload = Payload()
    data = encode_tree({"model": describe(make_cnn(seed=1), payload), "arrays": payload.arrays})
    refused = 0
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            try:
                json.dumps(decode_tree(bytes(bad)))
            except ValueError:
                refused += 1
    assert refused > 0.25 * 8 * len(data)


@pytest.mark.parametrize("data, match", [
    (b"\x81" * 101 + b"\x00", "nested too deeply"),
    (b"\xf7" + b"\xff" * 9 + b"\x01", "claims .* items"),
    (b"\xf8\x05\xa0\x00", "claims 5 items"),
    (b"\xf9", "unknown tag byte 0xf9"),
    (b"\xf6\x02\xc3\x28", "not UTF-8"),
    (b"\x91\xf2\x00", "key must be a new string"),
    (b"\xf3" + b"\x80" * 10 + b"\x02", "above"),
    (b"", "truncated"),
])
def test_malformed_bytes_are_refused_with_what_is_wrong(data, match):
    with pytest.raises(ValueError, match=match):
        decode_tree(data)


def test_nesting_up_to_the_limit_is_read():
    depth = 100
    assert decode_tree(b"\x81" * (depth - 1) + b"\x80") == json.loads("[" * depth + "]" * depth)


@pytest.mark.parametrize("value", [object(), 2**64, -2**64, {1: 2}, np.zeros(2)])
def test_the_writer_refuses_what_it_cannot_hold(value):
    with pytest.raises(ValueError, match="cannot hold|keys are strings"):
        encode_tree(value)


def test_floats_keep_every_bit():
    values = [0.1, -0.0, 1e-300, math.pi, float("inf")]
    back = decode_tree(encode_tree(values))
    assert [np.float64(v).tobytes() for v in back] == [np.float64(v).tobytes() for v in values]


def test_a_quantized_model_saved_and_loaded_keeps_its_layers(tmp_path):
    model = prune_and_quantize(make_cnn(seed=2), 0.5)
    back = from_bytes(to_bytes(model))
    kinds = [type(m) for _, m in back.named_modules()]
    assert QuantizedConv2d in kinds and QuantizedLinear in kinds
