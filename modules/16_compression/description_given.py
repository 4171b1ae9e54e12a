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
# # Module 16, given code: the file's description of the layers
#
# This file is part of Module 16 but holds no task. A compressed file holds a network's
# arrays and a description of its layers: which layer comes where, with which arguments,
# and which arrays hold its weights. This file turns a model into that description and
# back, checking every part of it, and writes it in a compact binary form. `tito export
# 16` exports it to `tinytorch/compression/description.py`; the file around it is
# `storage_given.py`'s.

# %%
#| default_exp compression.description

# %% [markdown]
# ### The description, and why it is binary
#
# The description is a tree of maps, lists, strings and numbers, like JSON:
# `{"model": {"type": "Sequential", "layers": [{"type": "Linear", "shared": 0}, ...]},
# "arrays": [["uint8", 538], ...]}`. Format version 2 wrote it as JSON text: 150-210
# bytes for the demo's MLP, a tenth of a 1.5 KB file of shared weights, and none of it
# the weights' information. Version 3 writes the same tree in binary: one byte for
# each small number (0-127), each short list or map, and each name the format knows
# (`"type"`, `"Linear"`, `"uint8"`, ...); the same MLP takes about 45 bytes. Reading it
# back gives the same tree, which is then checked exactly as a JSON one is.
#
# Every count read from the bytes (items of a list, length of a string) is checked
# against the bytes that are left before anything is allocated, and trees nest at most
# `MAX_NESTING` deep.

# %%
#| exporti
"""The file's description of the layers: the layer tree and its checks, in JSON or a compact binary form (given code)."""
import math
import struct

import numpy as np

from tinytorch.compression.encodings import (Payload, decode_bias, decode_float, decode_weights, encode_bias,
                                             encode_float, encode_weights)
from tinytorch.compression.entropy import ByteReader, varint
from tinytorch.compression.sharing import SHARED_LAYERS, decode_shared, encode_shared
from tinytorch.core import activations as _act
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, get_rng
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

# NOTE: the order of WORDS is part of the format: a word's byte is its place here.
# Append-only would still change what old readers see: a new word means a new version
# (version 4 appended "training", the modules' mode).
WORDS = ("model", "arrays", "type", "layers", "args", "shared", "weight", "qbias", "bias", "float_weight",
         "input_scale", "shape", "scale", "channels", "axis", "zero_point", "encoding", "values", "gaps", "bits",
         "starts", "columns", "int8", "uint8", "uint16", "uint32", "int32", "float32", "dense", "bitmask", "csr",
         "stride", "padding", "kernel_size", "dim", "p", "num_features", "eps", "momentum", "running_mean",
         "running_var", "Sequential", "Linear", "Conv2d", "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Flatten",
         "Dropout", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "training")
_WORD = {w: i for i, w in enumerate(WORDS)}
# One byte says what follows: a small int, a short list or map, a known word, or a tag.
_SMALL, _LIST, _MAP, _WORDS = 0x00, 0x80, 0x90, 0xA0  # 128 ints, lists and maps of < 16, 80 words
_NONE, _FALSE, _TRUE, _INT, _NEG, _FLOAT, _STR, _LONG_LIST, _LONG_MAP = range(0xF0, 0xF9)
assert len(WORDS) <= _NONE - _WORDS  # the words' bytes end where the tags begin
MAX_NESTING = 100  # lists and maps inside each other (32 nested Sequentials take 66)
MAX_INT = 1 << 64


# %%
#| exporti
def encode_tree(value) -> bytes:
    """`value` (None, bool, int, float, str, list or str-keyed dict) in the compact binary form."""
    out = bytearray()
    _put(value, out)
    return bytes(out)


def _put(value, out: bytearray) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: _NONE, False: _FALSE, True: _TRUE}[value])
    elif isinstance(value, (int, np.integer)):
        value = int(value)
        if not -MAX_INT < value < MAX_INT:
            raise ValueError(f"a description cannot hold the integer {value} (at most 2**64 in size)")
        if 0 <= value < _LIST:
            out.append(value)
        else:
            out += bytes([_INT if value >= 0 else _NEG]) + varint(value if value >= 0 else -1 - value)
    elif isinstance(value, (float, np.floating)):
        out += bytes([_FLOAT]) + struct.pack("<d", float(value))
    elif isinstance(value, str):
        if value in _WORD:
            out.append(_WORDS + _WORD[value])
        else:
            raw = value.encode()
            out += bytes([_STR]) + varint(len(raw)) + raw
    elif isinstance(value, (list, tuple)):
        out += bytes([_LIST + len(value)]) if len(value) < 16 else bytes([_LONG_LIST]) + varint(len(value))
        for item in value:
            _put(item, out)
    elif isinstance(value, dict):
        out += bytes([_MAP + len(value)]) if len(value) < 16 else bytes([_LONG_MAP]) + varint(len(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"a description's keys are strings, got {key!r}")
            _put(key, out)
            _put(item, out)
    else:
        raise ValueError(f"a description cannot hold a {type(value).__name__}")


def decode_tree(data: bytes, what: str = "description"):
    """The value `encode_tree` wrote as `data`; ValueError for anything malformed, extra bytes included."""
    r = ByteReader(bytes(data), what)
    value = _get(r, 0)
    if r.pos != len(r.data):
        raise ValueError(f"{what}: {len(r.data) - r.pos} bytes after its end")
    return value


def _count(r: ByteReader, tag: int, base: int, long_tag: int, per_item: int) -> int:
    """How many items a list or map claims: at most what the bytes left could hold."""
    n = tag - base if tag != long_tag else r.varint(MAX_INT)
    left = len(r.data) - r.pos
    if n * per_item > left:
        raise ValueError(f"{r.what}: a {'map' if per_item == 2 else 'list'} claims {n:,} items, "
                         f"more than the {left:,} bytes left can hold")
    return n


def _get(r: ByteReader, depth: int):
    tag = r.take(1)[0]
    if tag < _LIST:
        return tag
    is_list, is_map = _LIST <= tag < _MAP or tag == _LONG_LIST, _MAP <= tag < _WORDS or tag == _LONG_MAP
    if (is_list or is_map) and depth >= MAX_NESTING:
        raise ValueError(f"{r.what}: nested too deeply (more than {MAX_NESTING} lists and maps)")
    if is_list:
        return [_get(r, depth + 1) for _ in range(_count(r, tag, _LIST, _LONG_LIST, 1))]
    if is_map:
        spec = {}
        for _ in range(_count(r, tag, _MAP, _LONG_MAP, 2)):
            key = _get(r, depth + 1)
            if not isinstance(key, str) or key in spec:
                raise ValueError(f"{r.what}: a map's key must be a new string, got {key!r}")
            spec[key] = _get(r, depth + 1)
        return spec
    if tag < _WORDS + len(WORDS):
        return WORDS[tag - _WORDS]
    if tag in (_NONE, _FALSE, _TRUE):
        return {_NONE: None, _FALSE: False, _TRUE: True}[tag]
    if tag in (_INT, _NEG):
        n = r.varint(MAX_INT)
        return n if tag == _INT else -1 - n
    if tag == _FLOAT:
        return struct.unpack("<d", r.take(8))[0]
    if tag == _STR:
        raw = r.take(r.varint(len(r.data)))
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{r.what}: a string that is not UTF-8") from None
    raise ValueError(f"{r.what}: unknown tag byte {tag:#04x}")


# %% [markdown]
# ### From a model to its description
#
# `describe` walks the model: a `Sequential` lists its layers, a weight layer names the
# arrays of its weight and bias (appended to the payload, `encodings.py`), a shared layer
# names its one byte string (`sharing.py`), and any other layer gives its class and
# constructor arguments.

# %%
#| exporti
# Constructor arguments of each layer the file format can rebuild, read back by name.
LAYER_ARGS: dict[type, tuple[str, ...]] = {
    _act.ReLU: (), _act.Sigmoid: (), _act.Tanh: (), _act.GELU: (), _act.Softmax: ("dim",),
    Flatten: (), Dropout: ("p",), MaxPool2d: ("kernel_size", "stride", "padding"),
    AvgPool2d: ("kernel_size", "stride", "padding"), BatchNorm2d: ("num_features", "eps", "momentum"),
}
BY_NAME = {cls.__name__: cls for cls in (*LAYER_ARGS, Linear, Conv2d, Sequential)}
FLOAT_LAYERS = (Linear, Conv2d)
QUANT_LAYERS = (QuantizedLinear, QuantizedConv2d)
_CONV_ARGS = ("stride", "padding")


def _plain(value):
    """The description's form of a constructor argument (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(module: Module, payload: Payload) -> dict:
    """The layer tree of `module` as a description, its arrays appended to `payload`."""
    payload.cost += LAYER_COST
    if isinstance(module, Sequential):
        return {"type": "Sequential", "layers": [describe(m, payload) for m in module]}
    if isinstance(module, SHARED_LAYERS):  # codebook + entropy-coded codes and positions (sharing_given.py)
        return encode_shared(module, payload)
    if isinstance(module, QUANT_LAYERS):
        conv = isinstance(module, QuantizedConv2d)
        spec = {"type": "Conv2d" if conv else "Linear", "weight": encode_weights(module.qweight, payload),
                "qbias": encode_bias(module.bias, payload)}
        if module.input_scale is not None:
            spec["input_scale"] = payload.add(np.asarray(module.input_scale, np.float32))
        if conv:
            spec["args"] = {name: _plain(getattr(module, name)) for name in _CONV_ARGS}
        return spec
    if isinstance(module, FLOAT_LAYERS):
        # A float layer is stored as float32, value for value (its zeros left out when that is smaller).
        spec = {"type": type(module).__name__, "float_weight": encode_float(module.weight.data, payload),
                "bias": None if module.bias is None else payload.add(module.bias.data)}
        if isinstance(module, Conv2d):
            spec["args"] = {name: _plain(getattr(module, name)) for name in _CONV_ARGS}
        return spec
    cls = type(module)
    if cls not in LAYER_ARGS:
        raise ValueError(f"save_compressed cannot store a {cls.__name__} layer "
                         f"(it stores {', '.join(sorted(BY_NAME))} and quantized Linear/Conv2d)")
    spec = {"type": cls.__name__}
    if LAYER_ARGS[cls]:
        spec["args"] = {name: _plain(getattr(module, name)) for name in LAYER_ARGS[cls]}
    if isinstance(module, BatchNorm2d):
        spec["arrays"] = {name: payload.add(getattr(module, name).data)
                          for name in ("weight", "bias", "running_mean", "running_var")}
    return spec


# %% [markdown]
# ### From a description back to a model
#
# `rebuild` believes nothing: every layer type is one of `BY_NAME`, every argument a
# small number, every array index one of the file's arrays, every shape the shape of
# the array really there, and Sequentials nest at most 32 deep.

# %%
#| exporti
_MAX_DEPTH = 32  # Sequentials inside Sequentials
# NOTE: a layer takes a few bytes of description and ~0.5 KiB of objects and ~8 us to build:
# each is charged 1 KiB of the file's budget, so a file of 64 MiB + 64 x S bytes of budget
# holds at most ~65,000 layers (+ S / 16), however small its description.
LAYER_COST = 1024
_MAX_ARG = 1 << 16  # kernel sizes, strides, paddings, dims


def _arg(name: str, value):
    """A constructor argument read from a file: a finite number, None, or a pair of small ints."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ValueError(f"layer argument {name} must be a number or a pair, got {value!r}")
        return tuple(_arg(name, v) for v in value)
    if value is None or isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_ARG:
        return value
    raise ValueError(f"layer argument {name}={value!r} is not a number of at most {_MAX_ARG} (or a pair)")


def _args(spec: dict, allowed: tuple[str, ...]) -> dict:
    args = spec.get("args", {})
    if not isinstance(args, dict) or not set(args) <= set(allowed):
        raise ValueError(f"a {spec['type']} takes the arguments {list(allowed)}, got {args!r}")
    # num_features is checked against the four arrays the file must hold, not a small limit
    return {k: v if k == "num_features" and type(v) is int else _arg(k, v) for k, v in args.items()}


def _float_layer(kind: str, weight: np.ndarray, bias: np.ndarray | None, args: dict) -> Module:
    """A Linear or Conv2d holding `weight` and `bias`.

    NOTE: the layer is made tiny, then given the stored arrays: its constructor would
    first fill a full-size random weight, which for a large layer costs more than the file.
    """
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"a {kind} with weight {list(weight.shape)} has a bias of shape {list(bias.shape)}")
    rng = get_rng()
    state = rng.bit_generator.state  # loading a file must not move the global random stream
    try:
        if kind == "Linear":
            layer = Linear(1, 1, bias=bias is not None)
            layer.out_features, layer.in_features = weight.shape
        else:
            layer = Conv2d(1, 1, 1, bias=bias is not None, **args)
            layer.out_channels, layer.in_channels = weight.shape[:2]
            layer.kernel_size = tuple(weight.shape[2:])
    finally:
        rng.bit_generator.state = state
    layer.weight = Tensor(weight, requires_grad=True)
    if bias is not None:
        layer.bias = Tensor(bias, requires_grad=True)
    return layer


def _quantized_layer(kind: str, spec: dict, arrays: list[np.ndarray], args: dict) -> Module:
    qweight = decode_weights(spec["weight"], arrays)
    if qweight.values.ndim != (2 if kind == "Linear" else 4):
        raise ValueError(f"a quantized {kind} needs a {2 if kind == 'Linear' else 4}-D weight, "
                         f"got shape {list(qweight.shape)}")
    bias = decode_bias(spec["qbias"], arrays)
    layer = QuantizedConv2d(qweight, bias, **args) if kind == "Conv2d" else QuantizedLinear(qweight, bias)
    if spec.get("input_scale") is not None:
        scale = arrays[spec["input_scale"]]
        # NOTE: files written before this check stored the 0-d scale with shape (1,).
        if scale.dtype != np.float32 or scale.size != 1 or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"an input scale must be one finite float32 > 0, "
                             f"got {scale.dtype} {scale.reshape(-1)[:4]}")
        layer.input_scale = np.float32(scale.reshape(()))
    return layer


def _batchnorm(spec: dict, arrays: list[np.ndarray], args: dict) -> Module:
    """A BatchNorm2d whose four arrays come from the file, each of `num_features` float32."""
    stored = spec.get("arrays")
    names = ("weight", "bias", "running_mean", "running_var")
    if not isinstance(stored, dict) or set(stored) != set(names):
        raise ValueError(f"a BatchNorm2d must store the arrays {list(names)}, got {stored!r}")
    n = args.pop("num_features", None)
    layer = BatchNorm2d(1, **args)  # checks eps and momentum; no array of the claimed size yet
    for name in names:
        a = arrays[stored[name]]
        if a.dtype != np.float32 or a.shape != (n,):
            raise ValueError(f"BatchNorm2d(num_features={n!r}) stores {name} as {a.dtype} {a.shape}")
        getattr(layer, name).data = a
    layer.num_features = n
    return layer


def _bounded_padding(layer: Module) -> Module:
    """A convolution or pooling layer read from a file, refused when its padding reaches its kernel.

    NOTE: padding below the kernel keeps a forward pass's padded input within
    (H + 2(k - 1)) x (W + 2(k - 1)) of its declared H x W (a pool: H + k); padding of 65,536
    would make an 8 x 8 input cost gigabytes. What a kernel costs, its weight pays for."""
    most = [k - 1 if isinstance(layer, Conv2d) else k // 2 for k in layer.kernel_size]
    if any(p > m for p, m in zip(layer.padding, most)):
        rule = "kernel size - 1" if isinstance(layer, Conv2d) else "half the kernel size"
        raise ValueError(f"layer argument padding={list(layer.padding)} of a {type(layer).__name__} with kernel "
                         f"{list(layer.kernel_size)}: at most {rule} ({most}) is allowed")
    return layer


def _weight_layer(kind: str, spec: dict, arrays: list[np.ndarray]) -> Module:
    """A Linear or Conv2d: shared, quantized or float, as the description says."""
    args = _args(spec, _CONV_ARGS if kind == "Conv2d" else ())
    if kind == "Conv2d":
        return _bounded_padding(_any_weight_layer(kind, spec, arrays, args))
    return _any_weight_layer(kind, spec, arrays, args)


def _any_weight_layer(kind: str, spec: dict, arrays: list[np.ndarray], args: dict) -> Module:
    if "shared" in spec:
        return decode_shared({**spec, "args": args}, arrays)
    if "weight" in spec:
        return _quantized_layer(kind, spec, arrays, args)
    weight = decode_float(spec["float_weight"], arrays, (2,) if kind == "Linear" else (4,))
    if weight.ndim != (2 if kind == "Linear" else 4):
        raise ValueError(f"a {kind} needs a {2 if kind == 'Linear' else 4}-D weight, got shape {list(weight.shape)}")
    bias = None if spec.get("bias") is None else decode_bias({"float32": spec["bias"]}, arrays)
    return _float_layer(kind, weight, bias, args)


def rebuild(spec: dict, arrays: list[np.ndarray], depth: int = 0) -> Module:
    """The layer (tree) that `describe` wrote as `spec`, checked part by part."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer must be described by a map (a JSON object), got {type(spec).__name__}")
    charge = getattr(arrays, "charge", None)
    if charge is not None:
        charge(LAYER_COST, "a layer")
    kind = spec.get("type")
    if kind == "Sequential":
        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a Sequential must list its layers")
        if depth >= _MAX_DEPTH:
            raise ValueError(f"Sequentials are nested more than {_MAX_DEPTH} deep")
        return Sequential(*[rebuild(s, arrays, depth + 1) for s in layers])
    if not isinstance(kind, str) or kind not in BY_NAME:
        raise ValueError(f"compressed file names an unknown layer type {kind!r}")
    if kind in ("Linear", "Conv2d"):
        return _weight_layer(kind, spec, arrays)
    args = _args(spec, LAYER_ARGS[BY_NAME[kind]])
    if kind == "BatchNorm2d":
        return _batchnorm(spec, arrays, args)
    if spec.get("arrays"):
        raise ValueError(f"a {kind} stores no arrays")
    layer = BY_NAME[kind](**args)
    return _bounded_padding(layer) if isinstance(layer, MaxPool2d) else layer
