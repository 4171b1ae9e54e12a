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
# # Module 20, given code: writing an ONNX graph
#
# This file is part of Module 20 but holds no task. `tito export 20` exports it with the
# lesson into
#
# - `tinytorch/deploy/graph.py`: `OnnxGraph`, a small builder of ONNX nodes and
#   initializers (tensors stored in the file), and the ONNX nodes of the layers that
#   hold no weight matrix (BatchNorm, pooling, Flatten, Dropout, activations).
# - `tinytorch/deploy/onnx_export.py`: `export_onnx`, which walks the model, calls the
#   lesson's `onnx_layer` (Task 20.3) on every layer, checks the graph with
#   `onnx.checker` and writes the file.
#
# The graph is built with `onnx.helper`, not traced through `torch.onnx`: every node in
# the file is one we chose, which is what a student should be able to read back.

# %%
#| default_exp deploy.graph

# %%
#| export
from __future__ import annotations
"""A small ONNX graph builder: initializers (dense or sparse), nodes, a dynamic batch dimension (given code)."""

import math

import numpy as np

from tinytorch.core import activations
from tinytorch.core.layers import Dropout, Module
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Flatten, MaxPool2d
from tinytorch.deploy.extra import require, unsupported

# ONNX opset 17: per-axis DequantizeLinear (13+), BatchNormalization without training
# outputs (15+); GELU is written with Erf, as the Gelu operator came only in opset 20.
OPSET = 17


class OnnxGraph:
    """Nodes and initializers of one ONNX graph, in the order they are added.

    Every value in the graph has a name; `node` returns the name of its output, so
    layers chain as `x = graph.node("Relu", [x])`.
    """

    def __init__(self, sparse: bool = False) -> None:
        self.onnx = require("onnx", "export_onnx")
        self.sparse = sparse
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def _fresh(self, name: str) -> str:
        base, n = name, 1
        while name in self._names:
            name, n = f"{base}_{n}", n + 1
        self._names.add(name)
        return name

    def initializer(self, name: str, array: np.ndarray, prunable: bool = False) -> str:
        """Store `array` in the file under a fresh `name`; returns the name.

        With `sparse=True` a `prunable` array holding zeros is stored sparse: its non-zero
        values and their flat positions (int64), as the `sparse_value` of a `Constant`
        node whose output is the dense array.
        NOTE: not as a graph's `sparse_initializer`: onnx.checker's shape inference refuses
        those as operator inputs ("unsupported type: sparse_tensor"); a Constant's output
        is an ordinary dense tensor.
        """
        name, array = self._fresh(name), np.ascontiguousarray(array)
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        if self.sparse and prunable and array.size and np.count_nonzero(array) < array.size:
            flat = array.reshape(-1)
            where = np.flatnonzero(flat).astype(np.int64)
            values = numpy_helper.from_array(flat[where], name)
            indices = numpy_helper.from_array(where, f"{name}_indices")
            sparse = helper.make_sparse_tensor(values, indices, list(array.shape))
            self.nodes.append(helper.make_node("Constant", [], [name], name=f"Constant_{len(self.nodes)}",
                                               sparse_value=sparse))
        else:
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, **attributes) -> str:
        """Add one `op` node reading `inputs`; returns the name of its (single) output."""
        out = self._fresh(name or f"{op.lower()}_{len(self.nodes)}")
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=f"{op}_{len(self.nodes)}", **attributes))
        return out

    def fake_quantize(self, x: str, scale: float, name: str) -> str:
        """`x` rounded onto the int8 levels of `scale` (Module 15's calibrated input), as Clip, Q, DQ.

        NOTE: Module 15 clips symmetric inputs to [-127, 127]; QuantizeLinear saturates to
        [-128, 127], so an input beyond the calibrated range is clipped first.
        """
        s = np.float32(scale)
        lo = self.initializer(f"{name}.input_min", np.array(-127 * s, np.float32))
        hi = self.initializer(f"{name}.input_max", np.array(127 * s, np.float32))
        sc = self.initializer(f"{name}.input_scale", np.array(s, np.float32))
        zp = self.initializer(f"{name}.input_zero_point", np.array(0, np.int8))
        x = self.node("Clip", [x, lo, hi])
        x = self.node("QuantizeLinear", [x, sc, zp], name=f"{name}.input_int8")
        return self.node("DequantizeLinear", [x, sc, zp])

    def plain_layer(self, layer: Module, x: str, name: str) -> str:
        """The nodes of a layer without a weight matrix; returns the output's name."""
        if isinstance(layer, BatchNorm2d):
            arrays = [self.initializer(f"{name}.{k}", getattr(layer, k).data)
                      for k in ("weight", "bias", "running_mean", "running_var")]
            return self.node("BatchNormalization", [x, *arrays], epsilon=layer.eps, momentum=1 - layer.momentum)
        if isinstance(layer, MaxPool2d):
            (ph, pw) = layer.padding
            op, extra = ("AveragePool", {"count_include_pad": 1}) if isinstance(layer, AvgPool2d) else ("MaxPool", {})
            return self.node(op, [x], kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                             pads=[ph, pw, ph, pw], **extra)
        if isinstance(layer, Flatten):
            return self.node("Flatten", [x], axis=1)
        if isinstance(layer, Dropout):
            return self.node("Identity", [x])  # an exported model runs in evaluation mode
        if isinstance(layer, activations.Softmax):
            return self.node("Softmax", [x], axis=layer.dim)
        if isinstance(layer, activations.GELU):
            return self._gelu(x, name)
        simple = {activations.ReLU: "Relu", activations.Sigmoid: "Sigmoid", activations.Tanh: "Tanh"}
        if type(layer) in simple:
            return self.node(simple[type(layer)], [x])
        raise unsupported(f"export_onnx (layer {name!r})", layer)

    def _gelu(self, x: str, name: str) -> str:
        """x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), the exact form TinyTorch's GELU computes."""
        root2 = self.initializer(f"{name}.sqrt2", np.array(math.sqrt(2.0), np.float32))
        one = self.initializer(f"{name}.one", np.array(1.0, np.float32))
        half = self.initializer(f"{name}.half", np.array(0.5, np.float32))
        erf = self.node("Erf", [self.node("Div", [x, root2])])
        return self.node("Mul", [self.node("Mul", [x, half]), self.node("Add", [erf, one])])

    def model(self, x: str, y: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...]):
        """The ONNX ModelProto: input `x` and output `y`, both with a dynamic batch dimension."""
        helper, TensorProto = self.onnx.helper, self.onnx.TensorProto
        inp = helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", *input_shape[1:]])
        out = helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", *output_shape[1:]])
        graph = helper.make_graph(self.nodes, "tinytorch", [inp], [out], self.initializers)
        model = helper.make_model(graph, producer_name="tinytorch", opset_imports=[helper.make_opsetid("", OPSET)])
        # NOTE: the newest IR version the installed onnx writes may be newer than the
        # runtime reads; opset 17's own IR version (8) is read by every runtime since 2022.
        model.ir_version = 8
        return model

# %% [markdown]
# ### The exporter
#
# `export_onnx` runs the model once on zeros of `input_shape` (this checks the shape
# and gives the output's shape), builds the graph layer by layer with the lesson's
# `onnx_layer`, lets `onnx.checker` judge it, and only then writes the file.

# %%
#| export deploy.onnx_export
"""Export a float or compressed model to ONNX: plain nodes, or int8 initializers feeding DequantizeLinear (given code)."""
import os

import numpy as np

from tinytorch.compression.container import module_modes, set_module_modes
from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_instance, check_shape
from tinytorch.core.layers import Linear, Module
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor
from tinytorch.deploy.convert import named_layers, onnx_layer
from tinytorch.core.files import write_atomic
from tinytorch.quantization import QuantizedConv2d, QuantizedLinear
from tinytorch.deploy.extra import require
from tinytorch.deploy.graph import OnnxGraph


# ONNX's Gemm multiplies 2-D inputs only, and Conv needs (batch, channels, H, W); TinyTorch's
# Linear also runs on one sample (1-D) or on (batch, ..., features): such shapes are refused.
_INPUT_DIMS = ((Linear, QuantizedLinear, 2, "Gemm", "batch, features"),
               (Conv2d, QuantizedConv2d, 4, "Conv", "batch, channels, H, W"))


def _check_dims(name: str, layer: Module, x: Tensor, shape: tuple[int, ...]) -> None:
    for *kinds, dims, op, meaning in _INPUT_DIMS:
        if isinstance(layer, tuple(kinds)) and x.data.ndim != dims:
            raise ValueError(f"export_onnx: layer {name!r} ({type(layer).__name__}) would get a {x.data.ndim}-D "
                             f"input {x.shape} from input_shape {shape}; ONNX's {op} takes {dims}-D inputs "
                             f"({meaning}): give a {dims}-D input_shape, or a Flatten before the layer")


def _dry_run(model: Module, layers: list, shape: tuple[int, ...]) -> Tensor:
    """The output on zeros of `shape`, layer by layer in eval mode; each module's mode is restored after.

    Raises:
        ValueError: the model cannot run on `shape`, or a layer would get an input ONNX cannot give it.
    """
    modes = module_modes(model)
    model.eval()  # NOTE: the exported graph is the inference graph, whatever mode the model is in
    y = Tensor(np.zeros(shape, np.float32))
    try:
        with no_grad():
            for name, layer in layers:
                _check_dims(name, layer, y, shape)
                try:
                    y = layer(y)
                except (ValueError, TypeError) as err:
                    raise ValueError(f"model cannot run on input_shape {shape}: {err}") from None
    finally:
        set_module_modes(model, modes)  # each module's own mode, as it was
    return y


def onnx_model(model: Module, input_shape: tuple[int, ...], sparse: bool = False):
    """The checked ONNX ModelProto of `model` (see `export_onnx`); nothing is written."""
    onnx = require("onnx", "export_onnx")
    check_instance("model", model, Module, "a tinytorch Module")
    shape = check_shape("input_shape", input_shape, ", one batch such as (1, 64) or (1, 1, 8, 8)")
    layers = named_layers(model)
    out = _dry_run(model, layers, shape)
    graph = OnnxGraph(sparse=sparse)
    x = y = graph._fresh("input")
    for name, layer in layers:
        y = onnx_layer(graph, layer, y, name or "layer")
    y = graph.node("Identity", [y], name="output")
    proto = graph.model(x, y, shape, out.shape)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                sparse: bool = False) -> int:
    """Write `model` as an ONNX file that ONNX Runtime runs with TinyTorch's outputs; returns its bytes.

    A float model becomes a plain graph (Gemm, Conv, BatchNormalization, pools, Flatten,
    activations); a `CompressedModel` keeps its int8 weights as int8 initializers feeding
    `DequantizeLinear` (QDQ). The batch dimension is dynamic: any batch size runs.

    Args:
        model: a Sequential (or CompressedModel) of supported layers.
        path: the `.onnx` file to write (replaced atomically).
        input_shape: the shape of one batch, e.g. `(1, 64)` or `(1, 1, 8, 8)`.
        sparse: store weights that hold zeros as sparse initializers (values + int64 positions).

    Raises:
        MissingExtraError: onnx is not installed.
        TypeError: not a Module, or a layer ONNX export does not support (named, with the list).
        ValueError: `input_shape` is malformed or the model cannot run on it.
    """
    proto = onnx_model(model, input_shape, sparse)
    return write_atomic(path, proto.SerializeToString())
