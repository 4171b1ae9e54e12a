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
# # Module 20: Deployment
#
# > What you compressed runs in PyTorch and in ONNX Runtime, with the same outputs.
#
# Module 16 left us with a pruned, INT8 network in a `.ttz` file that only TinyTorch
# reads. Where a model is used, in a phone app, a web server, a microcontroller, it runs
# in a *runtime* that knows nothing of TinyTorch. This module takes a model across, and
# checks at every step that it still computes the same numbers:
#
# 1. **A model file is names and arrays.** `"0.weight"` of shape `(128, 64)` means the
#    same thing in TinyTorch and PyTorch, because both chose the same names and layouts.
#    Write that dictionary once (Task 20.1) and PyTorch, safetensors and back are given.
# 2. **A runtime needs a graph.** Arrays alone do not say what to compute. ONNX stores
#    the computation as a graph of standard operators (`Gemm`, `Conv`, `Relu`, ...)
#    with the arrays as *initializers*. You write the weights (Task 20.2) and the two
#    layers that carry them (Task 20.3); the rest is given.
# 3. **Why QDQ.** An int8 weight in the file needs its scale beside it and a
#    `DequantizeLinear` node after it: the graph says exactly how int8 becomes float,
#    and a runtime with integer kernels may fuse the pair into one int8 operation.
# 4. **Check, then measure.** ONNX Runtime runs the file (Task 20.4); its outputs are
#    compared with TinyTorch's, and then we measure file bytes and latency.
#
# PyTorch, ONNX, ONNX Runtime and safetensors are an optional extra:
# `pip install "tinytorch[deploy]"`. Nothing else in TinyTorch needs them.
#
# Map of the module: this lesson exports `tinytorch/deploy/convert.py`; its given code,
# `bridge_given.py` (the extra, `to_torch`, `from_torch`, safetensors) and `onnx_given.py`
# (the `OnnxGraph` builder and `export_onnx`), exports the rest of `tinytorch.deploy`.

# %%
#| default_exp deploy.convert

# %%
#| export
from __future__ import annotations

import numpy as np

from tinytorch.compression import CompressedModel
from tinytorch.core.checks import check_instance, check_int
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d
from tinytorch.deploy.extra import SUPPORTED, require, skip_lesson_without, unsupported
from tinytorch.quantization import QuantizedLayer, QuantizedLinear

# %% [markdown]
# ## 1. A model file is names and arrays
#
# Open any PyTorch checkpoint and you find a dictionary: `"0.weight"`, `"0.bias"`,
# `"1.running_mean"`, ... each naming an array. The *names* are the path from the model
# to the parameter (child `"0"` of the Sequential, its `weight`); the *layout* is the
# meaning of each axis. TinyTorch followed PyTorch in both: a Linear weight is
# `(out_features, in_features)`, a Conv2d filter bank `(out, in, kh, kw)`, and
# `model.named_parameters()` gives the same dotted names. So the conversion is mostly a
# walk over the layers, with three details that decide whether PyTorch accepts it:
#
# - **Buffers count.** BatchNorm's `running_mean` and `running_var` are not parameters
#   but are part of the state; PyTorch also keeps a `num_batches_tracked` counter
#   (an int64 scalar) that TinyTorch does not: we write 0, which changes nothing while
#   the momentum is a number.
# - **Quantized layers hold int8.** A `QuantizedLinear` has `qweight` (int8 values and
#   a scale per output unit), not `weight`. PyTorch's float twin gets the dequantized
#   weight, `scale * values`: the weight the int8 model actually computes with.
# - **A `CompressedModel` is a wrapper.** Its names are those of the model inside.
#
# A layer that has no PyTorch twin must stop the conversion with its name, not be
# skipped: a checkpoint that silently lacks a layer is the worst kind of wrong.

# %% nbgrader={"grade": false, "grade_id": "torch-state-dict", "solution": true}
#| export
def named_layers(model: Module, prefix: str = "") -> list[tuple[str, Module]]:
    """(dotted name, layer) of every layer in the order they run; containers opened up."""
    if isinstance(model, CompressedModel):
        return named_layers(model.model, prefix)
    if isinstance(model, Sequential):
        return [item for name, child in model.named_children()
                for item in named_layers(child, f"{prefix}.{name}" if prefix else name)]
    if not isinstance(model, SUPPORTED):
        raise unsupported(f"layer {prefix!r}" if prefix else "the model", model)
    return [(prefix, model)]


def torch_state_dict(model: Module) -> dict[str, np.ndarray]:
    """The arrays PyTorch's twin of `model` holds, under PyTorch's names. Task 20.1

    Walk `named_layers(model)`. For each `(name, layer)`, with `key = name + "." + what`
    (just `what` when `name` is ""):
    - Linear / Conv2d: `weight` and, if there is one, `bias` (the Tensors' `.data`).
    - QuantizedLinear / QuantizedConv2d: `weight` is `layer.qweight.dequantize()`;
      `bias` (an ndarray or None) as float32.
    - BatchNorm2d: `weight`, `bias`, `running_mean`, `running_var`, and
      `num_batches_tracked` = `np.array(0, dtype=np.int64)`.
    - Other layers hold no arrays.
    Every float array is float32 and a copy (changing it must not change the model).

    Raises:
        TypeError: `model` is not a Module, or holds an unsupported layer (named).
    """
    check_instance("model", model, Module, "a tinytorch Module")
    state: dict[str, np.ndarray] = {}
    ### BEGIN SOLUTION
    for name, layer in named_layers(model):
        def put(what: str, array) -> None:
            state[f"{name}.{what}" if name else what] = np.array(array, dtype=np.float32)

        if isinstance(layer, (Linear, Conv2d)):
            put("weight", layer.weight.data)
            if layer.bias is not None:
                put("bias", layer.bias.data)
        elif isinstance(layer, QuantizedLayer):
            put("weight", layer.qweight.dequantize())
            if layer.bias is not None:
                put("bias", layer.bias)
        elif isinstance(layer, BatchNorm2d):
            for what in ("weight", "bias", "running_mean", "running_var"):
                put(what, getattr(layer, what).data)
            state[f"{name}.num_batches_tracked" if name else "num_batches_tracked"] = np.array(0, dtype=np.int64)
    ### END SOLUTION
    return state


# %%
if __name__ == "__main__":
    from tinytorch.core.activations import ReLU
    from tinytorch.core.spatial import Flatten, MaxPool2d

    _cnn = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    for _k, _v in torch_state_dict(_cnn).items():
        print(f"{_k:<24} {str(_v.shape):<16} {_v.dtype}")


# %% nbgrader={"grade": true, "grade_id": "test-torch-state-dict", "locked": true, "points": 3}
def test_unit_torch_state_dict():
    """Task 20.1"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.spatial import Flatten
    from tinytorch.quantization import quantize_model

    model = Sequential(Conv2d(1, 2, 3), BatchNorm2d(2), ReLU(), Flatten(), Sequential(Linear(72, 3), ReLU()))
    state = torch_state_dict(model)
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked", "4.0.weight", "4.0.bias"], list(state)
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"].shape == ()
    np.testing.assert_array_equal(state["4.0.weight"], model[4][0].weight.data)
    state["0.weight"][...] = 7.0  # a copy: the model keeps its weights
    assert not np.any(model[0].weight.data == 7.0)
    q = quantize_model(Sequential(Linear(5, 3)))
    qstate = torch_state_dict(CompressedModel(q))
    np.testing.assert_array_equal(qstate["0.weight"], q[0].qweight.dequantize())
    assert qstate["0.weight"].dtype == np.float32 and qstate["0.bias"].dtype == np.float32
    assert torch_state_dict(Linear(2, 2)).keys() == {"weight", "bias"}

    class Odd(Module):
        def forward(self, x):
            return x

    try:
        torch_state_dict(Sequential(Linear(2, 2), Odd()))
    except TypeError as err:
        assert "'1'" in str(err) and "Odd" in str(err) and "Linear" in str(err), err
    else:
        raise AssertionError("an unsupported layer must raise TypeError naming it")


# %%
if __name__ == "__main__":
    test_unit_torch_state_dict()

# %% [markdown]
# ## 2. Across to PyTorch, and back
#
# With the names right, the rest is given (`bridge_given.py`): `to_torch(model)` builds
# the `torch.nn` layer of each kind and shape, and loads `torch_state_dict(model)` with
# `strict=True`, so any wrong name or shape is an error. `from_torch(module)` goes back.
# `save_safetensors` writes the same dictionary to a file of raw arrays that PyTorch (or
# anything else) reads without running code; `torch.save` pickles, and unpickling a file
# can run any code it names.
#
# Below, a CNN goes to PyTorch and back, and the outputs are compared.

# %%
if __name__ == "__main__":
    # Without the packages of the extra, the lesson's run ends here, reported as skipped.
    skip_lesson_without("torch", "onnx", "onnxruntime", "safetensors")
    from tinytorch.core.tensor import Tensor
    from tinytorch.deploy import from_torch, to_torch

    _x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    _cnn.eval()
    _twin = to_torch(_cnn)
    print(_twin)
    import torch

    with torch.no_grad():
        _theirs = _twin(torch.from_numpy(_x)).numpy()
    _ours = _cnn(Tensor(_x)).data
    _back = from_torch(_twin)(Tensor(_x)).data
    print(f"max |PyTorch - TinyTorch| = {np.abs(_theirs - _ours).max():.2e}, "
          f"after the round trip: {np.abs(_back - _ours).max():.2e}")

# %% [markdown]
# ## 3. What a runtime needs: a graph, and why QDQ
#
# A runtime such as ONNX Runtime, TensorRT or a phone's neural engine does not run
# Python. It reads a file that holds
#
# - a **graph**: nodes in order, each a standard operator (`Gemm`, `Conv`, `Relu`,
#   `MaxPool`, ...) with named inputs and outputs and fixed attributes (strides, pads);
# - **initializers**: the arrays the nodes read, stored in the file;
# - an **opset**: the version of the operator definitions, so `Softmax` means the same
#   thing in every runtime that reads the file;
# - the **inputs and outputs** with their shapes. Ours say `["batch", 64]`: the batch
#   size is a name, not a number, so one file serves a batch of 1 and of 1,000.
#
# The layouts again match: ONNX's `Gemm(x, W, b, transB=1)` computes `x @ W^T + b` with
# `W` stored `(out, in)`, exactly our Linear; `Conv` takes `(out, in, kh, kw)` filters
# and padding as `[top, left, bottom, right]`.
#
# **Why QDQ.** The int8 model of Module 16 computes with `scale[o] * values[o, :]`.
# ONNX has a node that says precisely that: `DequantizeLinear(values, scale,
# zero_point, axis=0)` gives `(values - zero_point) * scale` per output channel. So an
# int8 weight goes into the file as int8 (1 byte per weight, not 4), followed by the
# node that turns it into the float weight the next `Gemm` or `Conv` reads. This
# Quantize-DeQuantize ("QDQ") form is what quantization tools write: a simple runtime
# runs it in float with exactly our numbers, and a runtime with int8 kernels recognises
# the pattern and fuses it into one integer operation. A calibrated model (Module 15's
# `input_scale`) also rounds the layer's *input* to int8: a `QuantizeLinear` /
# `DequantizeLinear` pair on the input, given as `graph.fake_quantize`.
#
# `OnnxGraph` (given) collects the pieces: `graph.initializer(name, array)` stores an
# array and returns its name; `graph.node(op, inputs, **attributes)` adds a node and
# returns the name of its output.

# %% nbgrader={"grade": false, "grade_id": "onnx-weight", "solution": true}
#| export
def onnx_weight(graph, layer: Module, name: str) -> str:
    """The name of the graph value holding `layer`'s float weight: an initializer, or int8 + DequantizeLinear. Task 20.2

    - Linear / Conv2d: one initializer `name + ".weight"` of `layer.weight.data`
      (pass `prunable=True`, so a sparse export can leave its zeros out).
    - QuantizedLinear / QuantizedConv2d (`q = layer.qweight`): initializers for
      `q.values` (int8, `prunable=True`), `q.scale` (float32) and `q.zero_point` as
      int8, then the node `DequantizeLinear(values, scale, zero_point)` with `axis=0`,
      named `name + ".weight"`; return that node's output.
    """
    if not isinstance(layer, (Linear, Conv2d, QuantizedLayer)):
        raise TypeError(f"onnx_weight needs a Linear or Conv2d layer (float or int8), got {type(layer).__name__}")
    ### BEGIN SOLUTION
    if isinstance(layer, QuantizedLayer):
        q = layer.qweight
        values = graph.initializer(f"{name}.weight_int8", q.values, prunable=True)
        scale = graph.initializer(f"{name}.weight_scale", q.scale.astype(np.float32))
        zero = graph.initializer(f"{name}.weight_zero_point", q.zero_point.astype(np.int8))
        return graph.node("DequantizeLinear", [values, scale, zero], name=f"{name}.weight", axis=0)
    return graph.initializer(f"{name}.weight", layer.weight.data, prunable=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-onnx-weight", "locked": true, "points": 3}
def test_unit_onnx_weight():
    """Task 20.2"""
    from tinytorch.deploy.graph import OnnxGraph
    from tinytorch.quantization import quantize_model

    onnx = require("onnx", "the test of Task 20.2")
    graph = OnnxGraph()
    lin = Linear(4, 3)
    assert onnx_weight(graph, lin, "0") == "0.weight" and not graph.nodes
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(graph.initializers[0]), lin.weight.data)
    q = quantize_model(Sequential(Conv2d(2, 3, 3)))[0]
    out = onnx_weight(graph, q, "1")
    (node,) = graph.nodes
    assert node.op_type == "DequantizeLinear" and list(node.output) == [out]
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializers}
    values, scale, zero = (arrays[i] for i in node.input)
    assert values.dtype == np.int8 and zero.dtype == np.int8 and scale.dtype == np.float32
    np.testing.assert_array_equal(values, q.qweight.values)
    np.testing.assert_array_equal(scale, q.qweight.scale)
    assert [a.i for a in node.attribute if a.name == "axis"] == [0]


# %%
if __name__ == "__main__":
    test_unit_onnx_weight()

# %% [markdown]
# Now the two layers that carry weights. A Linear (float or int8) is one `Gemm` node:
# inputs `x`, the weight from `onnx_weight`, and the bias initializer if there is one;
# attribute `transB=1` because the weight is stored `(out, in)`. A Conv2d is one `Conv`
# node with `kernel_shape`, `strides` and `pads` (`[ph, pw, ph, pw]`). Every other
# supported layer is given: `graph.plain_layer(layer, x, name)`.

# %% nbgrader={"grade": false, "grade_id": "onnx-layer", "solution": true}
#| export
def _bias(layer: Module) -> np.ndarray | None:
    """The float32 bias of a float or quantized layer, or None."""
    if layer.bias is None:
        return None
    return np.asarray(layer.bias.data if isinstance(layer, (Linear, Conv2d)) else layer.bias, np.float32)


def onnx_layer(graph, layer: Module, x: str, name: str) -> str:
    """Add the ONNX nodes computing `layer` on the value `x`; returns the output's name. Task 20.3

    - A quantized layer with an `input_scale` (calibrated) first rounds its input:
      `x = graph.fake_quantize(x, layer.input_scale, name)`.
    - Linear / QuantizedLinear: `Gemm(x, weight[, bias])` with `transB=1`.
    - Conv2d / QuantizedConv2d: `Conv(x, weight[, bias])` with `kernel_shape`,
      `strides` (lists of 2 ints) and `pads=[ph, pw, ph, pw]`.
    - Any other layer: `graph.plain_layer(layer, x, name)`.
    The weight is `onnx_weight(graph, layer, name)`; the bias an initializer
    `name + ".bias"` of `_bias(layer)`, left out when it is None.
    """
    ### BEGIN SOLUTION
    if not isinstance(layer, (Linear, Conv2d, QuantizedLayer)):
        return graph.plain_layer(layer, x, name)
    if isinstance(layer, QuantizedLayer) and layer.input_scale is not None:
        x = graph.fake_quantize(x, layer.input_scale, name)
    inputs = [x, onnx_weight(graph, layer, name)]
    bias = _bias(layer)
    if bias is not None:
        inputs.append(graph.initializer(f"{name}.bias", bias))
    if isinstance(layer, (Linear, QuantizedLinear)):
        return graph.node("Gemm", inputs, transB=1)
    ph, pw = layer.padding
    return graph.node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=[ph, pw, ph, pw])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-onnx-layer", "locked": true, "points": 3}
def test_unit_onnx_layer():
    """Task 20.3"""
    from tinytorch.core.activations import ReLU
    from tinytorch.deploy.graph import OnnxGraph

    graph = OnnxGraph()
    y = onnx_layer(graph, Conv2d(1, 2, 3, stride=2, padding=1), "input", "0")
    y = onnx_layer(graph, ReLU(), y, "1")
    onnx_layer(graph, Linear(8, 3, bias=False), y, "2")
    ops = [n.op_type for n in graph.nodes]
    assert ops == ["Conv", "Relu", "Gemm"], ops
    conv, _, gemm = graph.nodes
    attrs = {a.name: list(a.ints) for a in conv.attribute}
    assert attrs == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, attrs
    assert list(conv.input) == ["input", "0.weight", "0.bias"] and list(gemm.input)[1:] == ["2.weight"]
    assert [a.i for a in gemm.attribute if a.name == "transB"] == [1]


# %%
if __name__ == "__main__":
    test_unit_onnx_layer()

# %% [markdown]
# ## 4. Run the file, and compare
#
# `export_onnx(model, path, input_shape)` (given) walks the layers with your
# `onnx_layer`, lets `onnx.checker` judge the graph and writes the file. To run it, an
# `onnxruntime.InferenceSession` loads the file; `session.run(None, {input_name: x})`
# returns the list of outputs. We ask for one thread (`intra_op_num_threads = 1`,
# `inter_op_num_threads = 1` in `onnxruntime.SessionOptions()`), so its times compare
# with TinyTorch's single-threaded ones.

# %% nbgrader={"grade": false, "grade_id": "run-onnx", "solution": true}
#| export
def onnx_session(path, threads: int = 1, optimize: bool = True):
    """An ONNX Runtime session for the file at `path`, on the CPU with `threads` threads. Task 20.4

    Build `onnxruntime.SessionOptions()`, set `intra_op_num_threads` and
    `inter_op_num_threads` to `threads`; with `optimize=False` also set
    `graph_optimization_level` to `onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL`
    (the graph runs node by node, as written). Return
    `onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])`.
    """
    ort = require("onnxruntime", "onnx_session")
    check_int("threads", threads, 1)
    ### BEGIN SOLUTION
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ### END SOLUTION


def run_onnx(session, x: np.ndarray) -> np.ndarray:
    """The output of the session's graph for the float32 batch `x`."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


# %% nbgrader={"grade": true, "grade_id": "test-run-onnx", "locked": true, "points": 2}
def test_unit_onnx_session():
    """Task 20.4"""
    import tempfile
    from pathlib import Path

    from tinytorch.core.activations import ReLU
    from tinytorch.core.tensor import Tensor
    from tinytorch.deploy import export_onnx

    model = Sequential(Linear(6, 5), ReLU(), Linear(5, 2)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.onnx"
        export_onnx(model, path, (1, 6))
        session = onnx_session(path)
        assert session.get_session_options().intra_op_num_threads == 1
        plain = onnx_session(path, optimize=False).get_session_options()
        assert plain.graph_optimization_level == require("onnxruntime", "").GraphOptimizationLevel.ORT_DISABLE_ALL
        x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)  # batch 7: the batch is dynamic
        np.testing.assert_allclose(run_onnx(session, x), model(Tensor(x)).data, rtol=0, atol=1e-5)


# %%
if __name__ == "__main__":
    test_unit_onnx_session()

# %% [markdown]
# ## 5. The measurements
#
# Four models of the digits, built and trained below with Module 09's given recipe
# (`tinytorch.recipes`), go through every path: the MLP 64-128-64-10, a small CNN, the
# CNN with half its filters structurally pruned and *removed* (Module 16's
# `remove_pruned_units`: its shapes changed), and the MLP pruned to 90% and quantized to
# INT8 (a `CompressedModel`). For each we compare outputs, then measure bytes on disk
# and latency. Everything printed here is measured by your run;
# `TINYTORCH_QUICK=1` (set by `tito test`) trains for fewer epochs.

# %%
import copy
import os
import tempfile
import time
from pathlib import Path

QUICK = os.environ.get("TINYTORCH_QUICK") == "1"
OUT = Path(os.environ.get("TINYTORCH_PLOTS") or (tempfile.mkdtemp() if QUICK else "out/deployment"))


def digits_models(seed: int = 0) -> tuple[dict[str, Module], tuple]:
    """The four models of the measurements, trained on the digits, and the test set (flat, images)."""
    from tinytorch.compression import prune_and_quantize, remove_pruned_units, structured_prune
    from tinytorch.recipes import DigitsRecipe, digits_cnn, digits_mlp

    # Module 09's networks and recipe (Adam, lr 3e-3, batches of 64); the CNN's weights follow the MLP's.
    mlp, cnn = digits_mlp(seed=seed), digits_cnn(batchnorm=True, seed=None)
    recipe = DigitsRecipe(epochs=2 if QUICK else 15, lr=3e-3, seed=seed)
    flat, image = (recipe.fit(model).test.dataset.arrays for model in (mlp, cnn))
    pruned = copy.deepcopy(cnn)  # structured_prune works in place
    small = remove_pruned_units(pruned, structured_prune(pruned, 0.5))
    int8 = prune_and_quantize(mlp, 0.9)
    models = {"MLP": mlp, "CNN": cnn, "CNN, half removed": small, "MLP 90% INT8": int8}
    for m in models.values():
        m.eval()
    return models, (flat[0], image[0], flat[1])


def input_of(model: Module, test) -> np.ndarray:
    """The test images in the shape `model` reads: rows for the MLPs, 1x8x8 images for the CNNs."""
    return test[1] if "Conv" in repr(model) else test[0]


# %%
def analysis_outputs(models, test) -> dict[str, Path]:
    """Export every model to ONNX, run it in ONNX Runtime and PyTorch; the largest differences."""
    import torch

    from tinytorch.core.tensor import Tensor
    from tinytorch.deploy import export_onnx, from_torch, to_torch

    paths, diffs = {}, []
    print(f"{'model':<20} {'|ORT - ours|':>13} {'|torch - ours|':>14} {'|back - ours|':>14}")
    for label, model in models.items():
        x = input_of(model, test)
        ours = model(Tensor(x)).data
        paths[label] = OUT / f"{label.replace(' ', '_').replace(',', '').replace('%', '')}.onnx"
        export_onnx(model, paths[label], (1, *x.shape[1:]))
        ort_out = run_onnx(onnx_session(paths[label]), x)
        with torch.no_grad():
            twin = to_torch(model).eval()
            torch_out = twin(torch.from_numpy(x)).numpy()
        back = from_torch(twin)(Tensor(x)).data
        row = [np.abs(out - ours).max() for out in (ort_out, torch_out, back)]
        diffs.append(max(row))
        print(f"{label:<20} {row[0]:>13.2e} {row[1]:>14.2e} {row[2]:>14.2e}")
    print(f"largest difference anywhere: {max(diffs):.2e} (the tests allow 1e-5 for float, 1e-4 for INT8)")
    return paths


# %% [markdown]
# ### Bytes on disk
#
# The same weights in six files: the ONNX file (dense initializers); the ONNX file with
# *sparse* weights (the non-zero values plus an int64 position each); the ONNX file
# compressed with xz, as it might travel; Module 16's `.ttz`; `torch.save` of the PyTorch
# twin's state dict; and safetensors. Only `.ttz` and the xz file are compressed.

# %%
def analysis_bytes(models, paths) -> dict[str, dict[str, int]]:
    """File sizes of each model in each format; a table, and a bar chart saved as PNG."""
    import lzma

    import torch

    from tinytorch.compression import save_compressed
    from tinytorch.deploy import export_onnx, save_safetensors, to_torch

    sizes: dict[str, dict[str, int]] = {}
    for label, model in models.items():
        stem = paths[label].with_suffix("")
        x_shape = (1, 1, 8, 8) if "Conv" in repr(model) else (1, 64)
        onnx_bytes = paths[label].read_bytes()
        torch.save(to_torch(model).state_dict(), stem.with_suffix(".pt"))
        sizes[label] = {
            "ONNX": len(onnx_bytes),
            "ONNX sparse": export_onnx(model, stem.with_suffix(".sparse.onnx"), x_shape, sparse=True),
            "ONNX, xz": len(lzma.compress(onnx_bytes, preset=9)),
            ".ttz": save_compressed(model, stem.with_suffix(".ttz")),
            "torch.save": stem.with_suffix(".pt").stat().st_size,
            "safetensors": save_safetensors(model, stem.with_suffix(".safetensors")),
        }
    formats = list(next(iter(sizes.values())))
    print(f"{'model':<20}" + "".join(f"{f:>13}" for f in formats))
    for label, row in sizes.items():
        print(f"{label:<20}" + "".join(f"{row[f]:>13,}" for f in formats))
    plot_bytes(sizes, OUT / "file_bytes.png")
    return sizes


def plot_bytes(sizes: dict[str, dict[str, int]], path: Path) -> Path:
    """Grouped bars: bytes on disk of each model (group) in each format (bar), log scale."""
    import matplotlib.pyplot as plt

    formats = list(next(iter(sizes.values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(formats)
    for i, fmt in enumerate(formats):
        ax.bar([g + i * width for g in range(len(sizes))], [row[fmt] for row in sizes.values()], width, label=fmt)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(sizes))], list(sizes))
    ax.set_yscale("log")
    ax.set_ylabel("bytes on disk")
    ax.set_title("One model, six files")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# %% [markdown]
# ### Latency: ONNX Runtime against TinyTorch
#
# Module 14's `time_interleaved` times the two in alternating rounds, on one thread
# each (it holds NumPy's BLAS to one thread; the session was built with one thread, so
# ONNX Runtime computes in the calling thread), on a batch of 1 (one request) and a
# batch of 256. The clock is this process's CPU time: on one thread it is the latency an
# idle machine would show, and it does not count the time other programs hold the CPU.

# %%
def analysis_latency(models, test, paths) -> dict[tuple[str, int], tuple[float, float]]:
    """Median seconds per call of TinyTorch and ONNX Runtime, one thread, batch 1 and 256."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor
    from tinytorch.profiling import time_interleaved

    repeats = 3 if QUICK else 15
    times: dict[tuple[str, int], tuple[float, float]] = {}
    print(f"{'model':<20} {'batch':>5} {'TinyTorch':>11} {'ONNX Runtime':>13} {'ratio':>7}")
    for label, model in models.items():
        session = onnx_session(paths[label])
        for batch in (1, 256):
            x = input_of(model, test)[:batch]
            tx = Tensor(x)

            def ours():
                with no_grad():
                    return model(tx)

            # time_interleaved holds NumPy's BLAS to one thread; ONNX Runtime's session has one too
            t_ours, t_ort = time_interleaved([ours, lambda: run_onnx(session, x)], repeats=repeats, clock="cpu")
            times[label, batch] = (t_ours, t_ort)
            print(f"{label:<20} {batch:>5} {t_ours * 1e3:>9.3f}ms {t_ort * 1e3:>11.3f}ms {t_ours / t_ort:>6.1f}x")
    return times


# %% [markdown]
# ### What ONNX keeps of the sparsity
#
# ONNX can store a tensor sparse: its non-zero values and their positions. The sparse
# export puts each weight that holds zeros in a `Constant` node with a `sparse_value`
# (`onnx.checker` refuses a graph-level `sparse_initializer` as an operator's input).
# ONNX Runtime turns such tensors into dense arrays when it loads the file and runs its
# usual dense `Gemm` and `Conv`: the memory it holds and the work it does are those of
# the dense model, as the equal times below show. Below, the 90%-pruned model is loaded from the dense
# and from the sparse file, run with the graph optimized and as written, and the
# outputs and times compared.

# %%
def analysis_sparse_load(models, test, paths) -> None:
    """The sparse and the dense ONNX file of the pruned INT8 model: outputs, and time optimized or not."""
    from tinytorch.profiling import time_interleaved

    label = "MLP 90% INT8"
    dense_path, sparse_path = paths[label], paths[label].with_suffix("").with_suffix(".sparse.onnx")
    x = input_of(models[label], test)[:256]
    for optimize in (True, False):
        dense, sparse = onnx_session(dense_path, optimize=optimize), onnx_session(sparse_path, optimize=optimize)
        same = np.array_equal(run_onnx(dense, x), run_onnx(sparse, x))
        t_dense, t_sparse = time_interleaved([lambda: run_onnx(dense, x), lambda: run_onnx(sparse, x)],
                                             repeats=3 if QUICK else 15, clock="cpu")
        print(f"{label}, graph {'optimized' if optimize else 'as written'}: same outputs: {same}; batch 256: "
              f"dense file {t_dense * 1e3:.3f} ms, sparse file {t_sparse * 1e3:.3f} ms "
              f"(sparse takes {t_sparse / t_dense:.2f}x the dense file's time)")


# %% [markdown]
# ### What a runtime does with QDQ
#
# The pruned INT8 MLP quantized its weights only; a *calibrated* copy (Module 15's
# `calibration_data`) also rounds each layer's input to int8, which the graph says with
# a QuantizeLinear / DequantizeLinear pair. Run node by node, the graph computes exactly
# what TinyTorch computes; optimized, ONNX Runtime may replace the pattern by a kernel
# of its own. The two are compared below.

# %%
def analysis_calibrated(models, test) -> None:
    """A calibrated INT8 MLP in ONNX Runtime: outputs as written and optimized, against TinyTorch's."""
    from tinytorch.compression import prune_and_quantize
    from tinytorch.core.tensor import Tensor
    from tinytorch.deploy import export_onnx

    x = test[0]
    model = prune_and_quantize(models["MLP"], 0.9, calibration_data=x[:128]).eval()
    path = OUT / "mlp_calibrated.onnx"
    export_onnx(model, path, (1, 64))
    ours = model(Tensor(x)).data
    for optimize in (False, True):
        theirs = run_onnx(onnx_session(path, optimize=optimize), x)
        diff = np.abs(theirs - ours)
        print(f"calibrated INT8 MLP, graph {'optimized' if optimize else 'as written'}: max |ORT - ours| "
              f"{diff.max():.2e}, outputs beyond 1e-4: {np.mean(diff > 1e-4):.1%}, "
              f"same predicted class: {np.mean(theirs.argmax(1) == ours.argmax(1)):.1%}")


# %%
def read_aloud(paths: dict[str, Path], sizes: dict[str, dict[str, int]],
               times: dict[tuple[str, int], tuple[float, float]]) -> None:
    """The run's own figures behind each paragraph of the reading below."""
    q = sizes["MLP 90% INT8"]
    print(f"INT8 ONNX file {q['ONNX']:,} B: {sizes['MLP']['ONNX'] / q['ONNX']:.1f}x smaller than the float file; "
          f"sparse ONNX saves {1 - q['ONNX sparse'] / q['ONNX']:.0%}; ONNX + xz is {q['ONNX, xz'] / q['.ttz']:.2f}x "
          f"the .ttz; torch.save is {q['torch.save'] / q['.ttz']:.0f}x the .ttz")
    for batch in (1, 256):
        ratios = ", ".join(f"{label} {ours / ort:.1f}x" for (label, b), (ours, ort) in times.items() if b == batch)
        print(f"batch {batch}: ONNX Runtime faster than TinyTorch by {ratios}")
    full, half = times["CNN", 256], times["CNN, half removed", 256]
    print(f"half-removed CNN, batch 256: {half[0] / full[0]:.2f}x the full CNN's time in TinyTorch, "
          f"{half[1] / full[1]:.2f}x in ONNX Runtime")


# %%
if __name__ == "__main__":
    _start = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    _models, _test = digits_models()
    _paths = analysis_outputs(_models, _test)
    _sizes = analysis_bytes(_models, _paths)
    _times = analysis_latency(_models, _test, _paths)
    analysis_sparse_load(_models, _test, _paths)
    analysis_calibrated(_models, _test)
    read_aloud(_paths, _sizes, _times)
    print(f"analyses took {time.perf_counter() - _start:.1f} s")


# %% [markdown]
# ### Reading the results
#
# The cell above ran every analysis and read the tables of *your* run aloud; what follows
# explains why, with the figures of the runs this text was written from (a 2-core machine
# shared with other work; CPU-time clock, one thread; three runs, one under each OpenBLAS
# kernel, so a figure that moved between them is a range).
#
# - **Outputs.** Every path gives TinyTorch's outputs to a few millionths (largest
#   difference under 1e-05 on logits of about 10), and `from_torch(to_torch(m))` gives them
#   back bit for bit: the same float32 weights, and the same NumPy code computing them.
#   The differences are float32 sums taken in another order, not a different model.
# - **Bytes.** Dense, every format costs the same: 4 bytes a weight (ONNX 69,422 B,
#   safetensors 69,376 B, `torch.save` a little more for its pickle; `.ttz` 64,088-64,097 B,
#   as random-looking floats barely compress). The 90%-pruned INT8 model is where formats
#   part: its ONNX file keeps int8 weights (19,883 B, 3.5x smaller than the float
#   file), but writes every zero. The sparse ONNX file saves only 9%, because each
#   non-zero int8 value (1 byte) needs an int64 position (8 bytes). Compressed with xz,
#   the ONNX file comes within 1.22x of the `.ttz` (4,804-4,812 B against 3,945-3,952 B),
#   which codes its positions as small gaps. PyTorch's formats store the dequantized
#   float32 weights: `torch.save` writes 71,941 B, 18x the `.ttz`.
# - **Latency.** ONNX Runtime runs one call of the MLP 2.3-2.7x and of the CNN 12.8-13.4x
#   faster than TinyTorch at batch 1: TinyTorch pays Python and NumPy overhead per layer
#   (`im2col` for each convolution), which dominates a tiny input. At batch 256 the gap
#   narrows for the CNN (2.2-2.5x): then the work is one big matrix product, done as well
#   as the BLAS kernel allows; for the MLP it is 1.6-3.3x, the slow end under Prescott's
#   kernel, which has no AVX: which BLAS kernel NumPy runs matters as much as the runtime.
# - **Removed units.** In TinyTorch the half-removed CNN takes 0.52-0.56x the full CNN's
#   time at batch 256; in ONNX Runtime 0.72-0.74x: fewer channels helped less there.
#   A runtime's kernels are tuned for common shapes, so measure in the runtime you ship to.
# - **Sparsity.** The sparse and the dense ONNX files give identical outputs in the same
#   time (0.97-1.02x): ONNX Runtime turns the sparse weights into dense arrays when it
#   loads the file, so only the file is smaller; memory and work are those of the dense
#   model.
# - **QDQ.** As written, the calibrated graph computes exactly Module 15's integer path
#   (under 1e-06). Optimized, ONNX Runtime fused the QuantizeLinear / DequantizeLinear pairs
#   into an int8 kernel that rounds a few inputs differently: 0.7-0.9% of the outputs moved
#   by more than 1e-4 (at most about a hundredth), and every predicted class stayed the
#   same. This is QDQ doing its job (the runtime chose integer arithmetic), and it is why
#   a deployment is checked in the runtime that will run it.
# %%
def test_module():
    """Run every inline test of Module 20."""
    test_unit_torch_state_dict()
    test_unit_onnx_weight()
    test_unit_onnx_layer()
    test_unit_onnx_session()


# %%
if __name__ == "__main__":
    test_module()
    print("Module 20: all inline tests passed")
