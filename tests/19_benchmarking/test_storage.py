"""Task 19.4: honest bytes (float32 arrays, or the compressed file), parameters and non-zeros."""
import numpy as np
import pytest

from tinytorch.benchmarking import count_weights, is_compressed, storage_bytes
from tinytorch.compression import (compressed_size, load_compressed, magnitude_prune, prune_and_quantize,
                                   save_compressed)
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten
from tinytorch.profiling import count_parameters, model_size_bytes
from tinytorch.quantization import quantize_model

from .conftest import make_mlp


def make_cnn():
    return Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), Flatten(), Linear(4 * 64, 10))


@pytest.mark.task("19.4")
def test_float_mlp_is_four_bytes_per_parameter():
    model = make_mlp((64, 32, 10))
    params = 64 * 32 + 32 + 32 * 10 + 10
    assert storage_bytes(model) == 4 * params == model_size_bytes(model)
    assert count_weights(model) == (params, params) == (count_parameters(model), params)
    assert not is_compressed(model)


@pytest.mark.task("19.4")
def test_float_cnn_counts_batchnorm_statistics_too():
    model = make_cnn()
    buffers = 2 * 4  # running mean and variance
    assert storage_bytes(model) == 4 * (count_parameters(model) + buffers)


@pytest.mark.task("19.4")
def test_zeros_in_a_float_model_cost_the_same():
    model = make_mlp((64, 32, 10))
    before = storage_bytes(model)
    magnitude_prune(model, 0.9)
    assert storage_bytes(model) == before
    total, nonzero = count_weights(model)
    prunable = 64 * 32 + 32 * 10
    assert total == prunable + 42 and nonzero == prunable - round(0.9 * prunable) + 42


@pytest.mark.task("19.4")
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_compressed_model_is_its_file(tmp_path, sparsity):
    model = make_cnn()
    small = prune_and_quantize(model, sparsity)
    assert is_compressed(small)
    size = storage_bytes(small)
    path = tmp_path / "m.ttz"
    assert size == compressed_size(small).file_bytes == save_compressed(small, path) == path.stat().st_size
    assert storage_bytes(load_compressed(path)) == size  # the loaded model is stored the same way


@pytest.mark.task("19.4")
def test_quantized_model_without_the_wrapper_is_also_a_file():
    model = make_mlp((64, 32, 10))
    q = quantize_model(model)
    assert is_compressed(q) and storage_bytes(q) == compressed_size(q).file_bytes
    assert storage_bytes(q) < storage_bytes(model) / 2


def test_int8_values_are_counted_as_weights():
    model = make_mlp((64, 32, 10))
    small = prune_and_quantize(model, 0.75)
    total, nonzero = count_weights(small)
    q = [m for m in small.modules() if hasattr(m, "qweight")]
    assert total == sum(m.qweight.values.size + m.bias.size for m in q) == count_parameters(model)
    assert nonzero == sum(np.count_nonzero(m.qweight.values) + np.count_nonzero(m.bias) for m in q)
    assert nonzero <= total - round(0.75 * (64 * 32 + 32 * 10))


def test_not_a_module():
    with pytest.raises(TypeError, match="model must be a tinytorch Module, got dict"):
        storage_bytes({})
