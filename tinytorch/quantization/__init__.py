"""INT8 quantization (Module 15): int8 tensors with float32 scales, quantized layers, model conversion.

Generated from `modules/15_quantization/quantization_dev.py` into three files: `int8.py`
(the int8 tensor and the quantizers), `layers.py` (the integer matmul and the quantized
layers) and `convert.py` (calibration and `quantize_model`); this file only re-exports
their public names, so `from tinytorch.quantization import quantize_int8` works.
"""
from tinytorch.quantization.int8 import (
    INT8_MAX,
    INT8_MIN,
    SYMMETRIC_MAX,
    QuantizedTensor,
    choose_qparams,
    dequantize_int8,
    quantize_int8,
    quantize_with,
)
from tinytorch.quantization.layers import QuantizedConv2d, QuantizedLayer, QuantizedLinear, quantized_matmul
from tinytorch.quantization.convert import calibrate, quantize_model

__all__ = [
    "INT8_MAX",
    "INT8_MIN",
    "SYMMETRIC_MAX",
    "QuantizedConv2d",
    "QuantizedLayer",
    "QuantizedLinear",
    "QuantizedTensor",
    "calibrate",
    "choose_qparams",
    "dequantize_int8",
    "quantize_int8",
    "quantize_model",
    "quantize_with",
    "quantized_matmul",
]
