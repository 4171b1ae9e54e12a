"""Module 20: safetensors files with PyTorch's names, read by PyTorch's own loader."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")
import safetensors.torch  # noqa: E402  (after the skip: only where safetensors is installed)

from .conftest import digits_cnn, ours
from tinytorch.core.layers import Linear, Sequential
from tinytorch.deploy import load_safetensors, save_safetensors, to_torch


@pytest.mark.task("20.1")
@pytest.mark.parametrize("name", ["mlp", "cnn", "removed", "int8"])
def test_pytorch_loads_the_file_into_the_twin(models, name, tmp_path):
    model, x = models[name]
    path = tmp_path / "model.safetensors"
    size = save_safetensors(model, path)
    assert size == path.stat().st_size
    state = safetensors.torch.load_file(str(path))
    twin = to_torch(model)
    assert set(state) == set(twin.state_dict())
    fresh = to_torch(model)
    for p in fresh.parameters():
        torch.nn.init.zeros_(p)
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.from_numpy(x)).numpy(), ours(model, x), rtol=0, atol=1e-5)


@pytest.mark.task("20.1")
def test_load_safetensors_restores_a_float_model_exactly(models, tmp_path):
    model, x = models["cnn"]
    save_safetensors(model, tmp_path / "cnn.safetensors")
    other = digits_cnn(seed=5).eval()
    assert load_safetensors(tmp_path / "cnn.safetensors", other) is other
    np.testing.assert_array_equal(ours(other, x), ours(model, x))


def test_load_safetensors_refuses_bad_files_and_shapes_without_change(tmp_path):
    model = Sequential(Linear(4, 3))
    before = model.state_dict()
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00not a header")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_safetensors(tmp_path / "junk.safetensors", model)
    save_safetensors(Sequential(Linear(4, 5)), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="shape"):
        load_safetensors(tmp_path / "other.safetensors", model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "missing.safetensors", model)


def test_load_safetensors_refuses_a_compressed_model(models, tmp_path):
    model, _ = models["int8"]
    save_safetensors(model, tmp_path / "q.safetensors")
    with pytest.raises(TypeError, match="float"):
        load_safetensors(tmp_path / "q.safetensors", model)
