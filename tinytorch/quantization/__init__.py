"""INT8 quantization (Module 15): int8 tensors with float32 scales, quantized layers, model conversion.

Generated from `modules/15_quantization/quantization_dev.py` into `int8.py`; this file
only re-exports its public names, so `from tinytorch.quantization import quantize_int8`
works.
"""
from tinytorch.quantization.int8 import (
    INT8_MAX,
    INT8_MIN,
    SYMMETRIC_MAX,
    QuantizedConv2d,
    QuantizedLayer,
    QuantizedLinear,
    QuantizedTensor,
    calibrate,
    choose_qparams,
    dequantize_int8,
    quantize_int8,
    quantize_model,
    quantize_with,
    quantized_matmul,
)

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
