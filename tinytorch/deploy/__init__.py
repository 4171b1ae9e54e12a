"""Deployment (Module 20): TinyTorch models in PyTorch, safetensors and ONNX Runtime, with the same outputs.

The code is generated from the lesson, `modules/20_deployment/deployment_dev.py`, into
`convert.py`, and from its given code, `bridge_given.py` (into `extra.py` and
`torch_bridge.py`) and `onnx_given.py` (into `graph.py` and `onnx_export.py`); this file
only re-exports the public names. torch, onnx, onnxruntime and safetensors form the
optional extra `deploy` (`pip install "tinytorch[deploy]"`); they are imported only
when a function needs them.
"""
from tinytorch.deploy.extra import EXTRA, INSTALL_HINT, SUPPORTED, SUPPORTED_NAMES, MissingExtraError
from tinytorch.deploy.convert import named_layers, onnx_layer, onnx_session, onnx_weight, run_onnx, torch_state_dict
from tinytorch.deploy.torch_bridge import from_torch, load_safetensors, save_safetensors, to_torch
from tinytorch.deploy.graph import OPSET, OnnxGraph
from tinytorch.deploy.onnx_export import export_onnx, onnx_model

__all__ = [
    "INSTALL_HINT", "MissingExtraError", "OnnxGraph", "SUPPORTED", "export_onnx", "from_torch", "load_safetensors",
    "onnx_layer", "onnx_model", "onnx_session", "onnx_weight", "run_onnx", "save_safetensors", "to_torch",
    "torch_state_dict", "EXTRA", "OPSET", "SUPPORTED_NAMES", "named_layers",
]
