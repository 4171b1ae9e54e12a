"""Module 20, Task 20.1: names and arrays, to_torch / from_torch against PyTorch itself."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from .conftest import digits_cnn, every_layer_model, ours
from tinytorch.compression import CompressedModel, prune_and_quantize
from tinytorch.core import activations as act
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.deploy import from_torch, to_torch, torch_state_dict
from tinytorch.quantization import quantize_model

# float32 sums in another order (PyTorch's kernels vs NumPy's BLAS): a few ulps of logits ~10
ATOL = 1e-5


def torch_out(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()


@pytest.mark.task("20.1")
def test_state_dict_has_pytorchs_names_shapes_and_values():
    model = digits_cnn()
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64, 10)).state_dict()
    state = torch_state_dict(model)
    assert list(state) == list(reference)
    for key, value in reference.items():
        assert state[key].shape == tuple(value.shape) and state[key].dtype == value.numpy().dtype, key
    for name, p in model.named_parameters() + model.named_buffers():
        np.testing.assert_array_equal(state[name], p.data)


@pytest.mark.task("20.1")
@pytest.mark.parametrize("name", ["mlp", "cnn", "removed", "int8"])
def test_to_torch_and_back_give_the_same_outputs(models, name):
    model, x = models[name]
    twin = to_torch(model)
    assert isinstance(twin, torch.nn.Module) and not twin.training
    expected = ours(model, x)
    np.testing.assert_allclose(torch_out(twin, x), expected, rtol=0, atol=ATOL)
    back = from_torch(twin).eval()
    np.testing.assert_allclose(ours(back, x), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours(from_torch(to_torch(back)), x), ours(back, x), rtol=0, atol=0)


@pytest.mark.task("20.1")
def test_removed_units_cross_with_their_new_shapes(models):
    removed, _ = models["removed"]
    twin = to_torch(removed)
    shapes = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    assert shapes["0.weight"] == (4, 1, 3, 3) and shapes["4.weight"] == (8, 4, 3, 3) and shapes["9.weight"] == (10, 32)


@pytest.mark.task("20.1")
def test_compressed_model_goes_to_torch_with_dequantized_weights(models):
    model, x = models["int8"]
    twin = to_torch(model)
    assert isinstance(model, CompressedModel)
    for (name, q), key in zip([(n, m) for n, m in model.model.named_modules() if hasattr(m, "qweight")],
                              ["0.weight", "2.weight", "4.weight"]):
        np.testing.assert_array_equal(twin.state_dict()[key].numpy(), q.qweight.dequantize())
        assert twin.state_dict()[key].numpy().dtype == np.float32
    # the pruned zeros are still exactly zero on the PyTorch side
    w = twin.state_dict()["0.weight"].numpy()
    assert np.count_nonzero(w) == np.count_nonzero(model.model[0].qweight.values)


@pytest.mark.task("20.1")
def test_every_supported_layer_matches_pytorch(rng):
    model = every_layer_model(rng)
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    twin = to_torch(model)
    np.testing.assert_allclose(torch_out(twin, x), ours(model, x), rtol=0, atol=ATOL)
    kinds = [type(m).__name__ for m in twin]
    assert kinds == ["Conv2d", "BatchNorm2d", "GELU", "AvgPool2d", "Conv2d", "Tanh", "MaxPool2d", "Dropout",
                     "Flatten", "Linear", "Sigmoid", "Linear", "Softmax"]
    np.testing.assert_allclose(ours(from_torch(twin).eval(), x), ours(model, x), rtol=0, atol=ATOL)


@pytest.mark.task("20.1")
def test_from_torch_reads_a_model_built_in_pytorch(rng):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.ReLU(),
                              torch.nn.Sequential(torch.nn.Linear(7, 3), torch.nn.Tanh())).eval()
    model = from_torch(net)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in net.named_parameters()]
    state = torch_state_dict(model)
    assert list(state) == list(net.state_dict())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy())
    x = rng.standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_allclose(ours(model, x), torch_out(net, x), rtol=0, atol=ATOL)
    single = from_torch(torch.nn.Linear(3, 2))
    assert isinstance(single, Sequential) and [n for n, _ in single.named_parameters()] == ["0.weight", "0.bias"]


def test_training_mode_crosses_over():
    model = digits_cnn()
    assert to_torch(model).training
    assert not to_torch(model.eval()).training
    assert not from_torch(to_torch(model)).training


@pytest.mark.task("20.1")
def test_unsupported_layer_names_the_layer_and_lists_the_supported():
    class Scale(Module):
        def forward(self, x):
            return x * 2

    for convert in (torch_state_dict, to_torch):
        with pytest.raises(TypeError, match=r"'1'.*Scale.*supported layers: .*BatchNorm2d.*Conv2d.*Linear"):
            convert(Sequential(Linear(2, 2), Scale()))
    with pytest.raises(TypeError, match="Module"):
        to_torch("not a model")


def test_from_torch_refuses_what_tinytorch_lacks():
    with pytest.raises(TypeError, match=r"LSTM.*supported layers"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LSTM(2, 2)))
    with pytest.raises(ValueError, match="groups"):
        from_torch(torch.nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="ceil_mode"):
        from_torch(torch.nn.MaxPool2d(2, ceil_mode=True))
    with pytest.raises(ValueError, match="approximate='tanh'"):
        from_torch(torch.nn.GELU(approximate="tanh"))
    with pytest.raises(ValueError, match="dim=None"):
        from_torch(torch.nn.Softmax())
    with pytest.raises(TypeError, match="torch.nn.Module"):
        from_torch(np.zeros(3))


def test_quantized_model_without_wrapper_converts(rng):
    q = quantize_model(Sequential(Linear(6, 4), act.ReLU(), Linear(4, 2)))
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(torch_out(to_torch(q), x), ours(q, x), rtol=0, atol=ATOL)
    compressed = prune_and_quantize(Sequential(Linear(6, 4)), 0.5)
    assert torch_state_dict(compressed).keys() == {"0.weight", "0.bias"}
