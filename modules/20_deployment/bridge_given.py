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
# # Module 20, given code: the optional extra and the PyTorch bridge
#
# This file is part of Module 20 but holds no task. It is the plumbing around the
# lesson's ideas: `tito export 20` exports it with the lesson into
#
# - `tinytorch/deploy/extra.py`: the packages of the optional extra `deploy` (torch,
#   onnx, onnxruntime, safetensors), imported only when a function needs them, with an
#   error that names the extra when they are missing; the list of layers that cross
#   over. Files are written by `tinytorch.core.files.write_atomic`, as everywhere.
# - `tinytorch/deploy/torch_bridge.py`: `to_torch`, `from_torch`, `save_safetensors`
#   and `load_safetensors`, built on the lesson's `torch_state_dict` (Task 20.1).

# %%
#| default_exp deploy.extra

# %%
#| export
from __future__ import annotations
"""The optional deploy extra: lazy imports with an error naming it, and the supported layers (given code)."""

import importlib.util

from tinytorch.core import activations
from tinytorch.core.layers import Dropout, Linear
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

EXTRA = "deploy"
INSTALL_HINT = 'pip install "tinytorch[deploy]"'
# The layers that go to PyTorch and ONNX and back; containers (Sequential,
# CompressedModel) are opened up around them.
SUPPORTED = (Linear, Conv2d, QuantizedLinear, QuantizedConv2d, BatchNorm2d, MaxPool2d, AvgPool2d, Flatten,
             Dropout, activations.ReLU, activations.Sigmoid, activations.Tanh, activations.GELU,
             activations.Softmax)
SUPPORTED_NAMES = ", ".join(sorted({cls.__name__ for cls in SUPPORTED}))


class MissingExtraError(ImportError):
    """A package of the optional extra `deploy` is not installed."""


# %% [markdown]
# The three functions below serve Module 20's files, not users: `#| exporti` keeps them out
# of `__all__`.

# %%
#| exporti
def require(package: str, feature: str):
    """The module `package`, imported now; a `MissingExtraError` naming the extra if it is absent.

    Args:
        package: "torch", "onnx", "onnxruntime" or "safetensors.numpy".
        feature: what needs it, for the message (for example "export_onnx").
    """
    try:
        return importlib.import_module(package)
    except ImportError as err:
        top = package.split(".")[0]
        raise MissingExtraError(f"{feature} needs the package {top!r}, part of TinyTorch's optional extra "
                                f"{EXTRA!r}: {INSTALL_HINT} ({err})", name=top) from None


def skip_lesson_without(*packages: str) -> None:
    """End a lesson's run here, as skipped, when a package its demonstrations use is missing.

    Prints one line naming the missing packages and the install command, then exits with
    code 77, which `tito test` reports as a skip, not a failure.
    """
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        print(f"skipped: the rest of this lesson runs PyTorch and ONNX Runtime; missing "
              f"{', '.join(missing)}: {INSTALL_HINT}, or pip install -e \".[dev,reference]\" in a checkout")
        raise SystemExit(77)


def unsupported(where: str, layer: object) -> TypeError:
    """The error for a layer that cannot cross over: which layer, and what can."""
    return TypeError(f"{where}: layer {type(layer).__name__} is not supported; supported layers: "
                     f"{SUPPORTED_NAMES} (inside Sequential or CompressedModel)")

# %% [markdown]
# ### The PyTorch twin
#
# `to_torch` builds, layer for layer, the `torch.nn` module of the same kind and shape,
# then loads the lesson's `torch_state_dict` into it with `strict=True`: a name or a
# shape that does not match PyTorch's is an error, not a silently random weight. The
# twin is a `torch.nn.Sequential` with the same indices as the TinyTorch model, so
# `"0.weight"` names the same array on both sides. `from_torch` goes the other way.

# %%
#| export deploy.torch_bridge
"""To PyTorch and back with PyTorch's names and layouts, and safetensors files (given code)."""
import json
import os
import stat

import numpy as np

from tinytorch.compression import CompressedModel
from tinytorch.compression.container import module_modes, set_module_modes
from tinytorch.core import activations
from tinytorch.core.checks import check_finite, check_instance
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.deploy.convert import torch_state_dict
from tinytorch.core.files import write_atomic
from tinytorch.deploy.extra import require, unsupported
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear

_ACTIVATIONS = ("ReLU", "Sigmoid", "Tanh", "GELU")


def _torch_layer(nn, layer: Module, where: str):
    """The torch.nn module of `layer`'s kind and shape (weights are loaded afterwards)."""
    if isinstance(layer, Sequential):
        return nn.Sequential(*[_torch_layer(nn, child, f"{where}.{i}".lstrip(".")) for i, child in enumerate(layer)])
    if isinstance(layer, (Linear, QuantizedLinear)):
        out_f, in_f = layer.weight.shape if isinstance(layer, Linear) else layer.qweight.shape
        return nn.Linear(in_f, out_f, bias=layer.bias is not None)
    if isinstance(layer, (Conv2d, QuantizedConv2d)):
        out_c, in_c, kh, kw = layer.weight.shape if isinstance(layer, Conv2d) else layer.qweight.shape
        return nn.Conv2d(in_c, out_c, (kh, kw), stride=layer.stride, padding=layer.padding,
                         bias=layer.bias is not None)
    if isinstance(layer, BatchNorm2d):
        return nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if type(layer) is MaxPool2d:
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, AvgPool2d):
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, count_include_pad=True)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, activations.Softmax):
        return nn.Softmax(dim=layer.dim)
    if type(layer).__name__ in _ACTIVATIONS and type(layer) is getattr(activations, type(layer).__name__):
        return getattr(nn, type(layer).__name__)()
    raise unsupported(f"to_torch (layer {where!r})" if where else "to_torch", layer)


def to_torch(model: Module):
    """A `torch.nn.Module` computing what `model` computes, with PyTorch's names and layouts.

    A `CompressedModel` goes across with its int8 weights dequantized to float32 (a
    calibrated model's int8 activations are not reproduced: the twin computes in float).
    Every module of the twin is in the mode of its TinyTorch counterpart (eval or training).

    Raises:
        MissingExtraError: torch is not installed.
        TypeError: `model` is not a Module, or holds a layer PyTorch's twin cannot be built for.
    """
    check_instance("model", model, Module, "a tinytorch Module")
    torch = require("torch", "to_torch")
    inner = model.model if isinstance(model, CompressedModel) else model
    twin = _torch_layer(torch.nn, inner, "")
    state = torch_state_dict(model)
    twin.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return _copy_modes(inner, twin)


def _copy_modes(source, target):
    """`target` with each module in the `training` mode of its counterpart in `source`; returns `target`.

    The two trees have the same shape (a Sequential's layers in the same order); either
    may be TinyTorch's or PyTorch's. Each module keeps its own flag, as in PyTorch.
    """
    target.training = bool(source.training)
    if isinstance(source, Sequential) or isinstance(target, Sequential):
        for child, twin in zip(source, target, strict=True):
            _copy_modes(child, twin)
    return target


def _from_torch_layer(torch, module, where: str) -> Module:
    nn = torch.nn
    if isinstance(module, nn.Sequential):
        return Sequential(*[_from_torch_layer(torch, m, f"{where}.{name}".lstrip(".")) for name, m in module.named_children()])
    if type(module) is nn.Linear:
        return Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if type(module) is nn.Conv2d:
        if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError(f"from_torch: Conv2d {where!r} uses groups, dilation, string padding or a padding mode "
                             f"other than zeros; TinyTorch's Conv2d has none of these")
        return Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                      bias=module.bias is not None)
    if type(module) is nn.BatchNorm2d:
        if not module.affine or not module.track_running_stats or module.momentum is None:
            raise ValueError(f"from_torch: BatchNorm2d {where!r} needs affine=True, track_running_stats=True and a momentum")
        return BatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum)
    if type(module) in (nn.MaxPool2d, nn.AvgPool2d):
        if module.ceil_mode or getattr(module, "dilation", 1) not in (1, (1, 1)) or not getattr(module, "count_include_pad", True) \
                or getattr(module, "divisor_override", None) is not None:
            raise ValueError(f"from_torch: {type(module).__name__} {where!r} uses ceil_mode, dilation or a custom divisor")
        cls = MaxPool2d if type(module) is nn.MaxPool2d else AvgPool2d
        return cls(module.kernel_size, module.stride, module.padding)
    if type(module) is nn.Flatten and module.start_dim == 1 and module.end_dim == -1:
        return Flatten()
    if type(module) is nn.Dropout:
        return Dropout(module.p)
    if type(module) is nn.Softmax:
        if module.dim is None:  # PyTorch then guesses the axis from the input's rank
            raise ValueError(f"from_torch: Softmax {where!r} has dim=None; give it an explicit dim")
        return activations.Softmax(dim=module.dim)
    if type(module) is nn.GELU and module.approximate != "none":
        raise ValueError(f"from_torch: GELU {where!r} uses approximate={module.approximate!r}; "
                         f"TinyTorch's GELU is the exact (erf) form")
    if type(module).__name__ in _ACTIVATIONS and type(module) is getattr(nn, type(module).__name__):
        return getattr(activations, type(module).__name__)()
    raise unsupported(f"from_torch (module {where!r})" if where else "from_torch", module)


def from_torch(module) -> Sequential:
    """A TinyTorch `Sequential` computing what the torch module computes (same names, copied weights).

    A single supported layer comes back wrapped: `Sequential(layer)`, its names prefixed "0.".

    Raises:
        MissingExtraError: torch is not installed.
        TypeError: not a torch module, or a layer TinyTorch has no counterpart for.
        ValueError: a layer's options (groups, dilation, ceil_mode, ...) TinyTorch lacks.
    """
    torch = require("torch", "from_torch")
    check_instance("module", module, torch.nn.Module, "a torch.nn.Module")
    if not isinstance(module, torch.nn.Sequential):
        module, wrapper = torch.nn.Sequential(module), module
        module.training = wrapper.training  # not .train(): that would set the caller's module too
    model = _from_torch_layer(torch, module, "")
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    model.load_state_dict(state)
    return _copy_modes(module, model)

# %% [markdown]
# ### safetensors: the same names, in a file that is only arrays
#
# A safetensors file is a JSON header (name, dtype, shape, byte range) followed by the
# raw arrays: no code is run to read it, unlike a pickle. With PyTorch's key names it
# loads into `to_torch(model)` as `model.load_state_dict(safetensors.torch.load_file(path))`.
#
# The model's mode travels in the header's metadata (strings only): `"training"` holds
# `false`, `true`, or one of them per module, as a `.ttz` file stores it. Loading restores
# it; a file without it (written by another tool) leaves the model's mode as it was.
# Values are float32 in TinyTorch: a file's F16 values convert exactly and load; F64
# values load when every one is finite and fits float32 (rounded to the nearest float32,
# as PyTorch's `.float()` does); integer and boolean arrays are refused rather than cast.

# %%
#| export deploy.torch_bridge
def save_safetensors(model: Module, path: str | os.PathLike) -> int:
    """Write `model`'s weights as a safetensors file with PyTorch's key names; returns its bytes.

    A `CompressedModel` is written with its weights dequantized to float32.

    Raises:
        MissingExtraError: safetensors is not installed.
        TypeError / ValueError: see `torch_state_dict`.
    """
    st = require("safetensors.numpy", "save_safetensors")
    state = {k: np.ascontiguousarray(v) for k, v in torch_state_dict(model).items()}
    modes = json.dumps(module_modes(model.model if isinstance(model, CompressedModel) else model))
    return write_atomic(path, st.save(state, metadata={"format": "pt", "training": modes}))


_MAX_HEADER = 100 << 20  # the JSON header safetensors itself accepts at most


def _safetensors_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a safetensors file, its header's claimed length checked against the file's
    size before anything else is read (a device or a pipe has no size: it is refused)."""
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file, so not a readable safetensors file")
        head = f.read(8)
        claimed = int.from_bytes(head, "little")
        if len(head) < 8 or claimed > min(info.st_size - 8, _MAX_HEADER):
            raise ValueError(f"{path} is not a readable safetensors file: its header claims {claimed:,} bytes, "
                             f"the file holds {info.st_size:,} (headers of at most {_MAX_HEADER:,})")
        return head + f.read(info.st_size - 8)


def load_safetensors(path: str | os.PathLike, model: Module) -> Module:
    """Copy the arrays of a safetensors file into the float `model` (same names and shapes); returns it.

    The model takes the mode (eval or training) the file records, if it records one.

    Raises:
        MissingExtraError: safetensors is not installed.
        TypeError: `model` is a CompressedModel (its int8 weights come from a `.ttz` file).
        ValueError: the file is not safetensors; its names or shapes differ from `model`'s;
            it holds integer or boolean arrays, NaN or inf, or F64 values beyond float32's
            range; or its modes do not fit `model`. `model` is then unchanged.
    """
    st = require("safetensors.numpy", "load_safetensors")
    if isinstance(model, CompressedModel) or not isinstance(model, Module):
        raise TypeError(f"model must be a float tinytorch Module of the file's shapes, got {type(model).__name__}")
    data = _safetensors_bytes(path)  # its own errors name the file already
    try:
        state, modes = st.load(data), _stored_modes(data)
    except Exception as err:  # safetensors raises its own error type for a foreign or cut file, json a ValueError
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
    state = {k: _float32(f"{path}: {k}", v) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    before = module_modes(model)
    try:
        if modes is not None:
            set_module_modes(model, modes)  # checks the modes fit the model before setting any
        model.load_state_dict(state)
    except ValueError as err:
        set_module_modes(model, before)
        raise ValueError(f"{path}: {err}") from None
    return model


def _stored_modes(data: bytes):
    """The `"training"` metadata of a safetensors file's header, decoded (None when it has none)."""
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    return None if "training" not in meta else json.loads(meta["training"])


def _float32(what: str, array: np.ndarray) -> np.ndarray:
    """`array` as float32 when that is faithful: float16 exactly, float64 when finite and within range."""
    if array.dtype.kind != "f":
        raise ValueError(f"{what} is {array.dtype}: TinyTorch's weights are floating point; "
                         f"an integer or boolean array is refused rather than cast")
    return check_finite(what, array, float32=True).astype(np.float32)
