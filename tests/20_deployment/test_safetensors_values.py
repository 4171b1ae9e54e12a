"""load_safetensors takes float32 values, or others only where they convert faithfully; the model is unchanged when it refuses."""
from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import manual_seed
from tinytorch.deploy import load_safetensors, save_safetensors

FINITE = r"must be finite \(not NaN or inf\)"  # check_finite's words


def _model() -> Sequential:
    manual_seed(0)
    return Sequential(Linear(3, 4), Linear(4, 2))


def _write(tmp_path, change) -> tuple:
    """A file of `_model()`'s state with `change(state)` applied; returns (path, the state written)."""
    st = pytest.importorskip("safetensors.numpy")
    state = {k: p.data.copy() for k, p in _model().named_parameters()}
    change(state)
    path = tmp_path / "m.safetensors"
    path.write_bytes(st.save({k: np.ascontiguousarray(v) for k, v in state.items()}))
    return path, state


def _assert_refused(path, words: str) -> None:
    model = Sequential(Linear(3, 4), Linear(4, 2)).eval()
    before = {k: p.data.copy() for k, p in model.named_parameters()}
    with pytest.raises(ValueError, match=words):
        load_safetensors(path, model)
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[k])
    assert not model.training


def test_f16_values_load_exactly_and_f64_that_fits_loads_rounded(tmp_path):
    def change(state):
        state["0.weight"] = state["0.weight"].astype(np.float16)
        state["1.weight"] = state["1.weight"].astype(np.float64) + 1e-12

    path, state = _write(tmp_path, change)
    model = load_safetensors(path, Sequential(Linear(3, 4), Linear(4, 2)))
    assert model[0].weight.data.dtype == np.float32
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"].astype(np.float32))
    np.testing.assert_array_equal(model[1].weight.data, state["1.weight"].astype(np.float32))


@pytest.mark.parametrize("value, first", [(1e300, r"1e\+300"), (-1e39, r"-1e\+39"), (np.inf, "inf"), (np.nan, "nan")])
def test_f64_values_float32_cannot_hold_are_refused(value, first, tmp_path):
    def change(state):
        state["1.weight"] = state["1.weight"].astype(np.float64)
        state["1.weight"][1, 2] = value

    path, _ = _write(tmp_path, change)
    _assert_refused(path, rf"m.safetensors: 1.weight {FINITE} and within float32's range .* 1 of its 8 values "
                          rf"are not, the first {first} at index \[1, 2\]")


def test_a_nan_float32_value_is_refused(tmp_path):
    path, _ = _write(tmp_path, lambda state: state["0.bias"].__setitem__(0, np.nan))
    _assert_refused(path, r"0.bias must be finite")


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.uint8])
def test_integer_and_boolean_arrays_are_refused_not_cast(dtype, tmp_path):
    def change(state):
        state["0.weight"] = (state["0.weight"] > 0).astype(dtype)

    path, _ = _write(tmp_path, change)
    _assert_refused(path, rf"0.weight is {np.dtype(dtype).name}: TinyTorch's weights are floating point; an integer "
                          r"or boolean array is refused rather than cast")


def test_a_file_pytorch_writes_with_its_int64_batch_counter_still_loads(tmp_path):
    pytest.importorskip("safetensors")
    from tinytorch.core.spatial import BatchNorm2d

    model = Sequential(BatchNorm2d(3)).eval()
    model[0].running_mean.data[...] = [1.0, 2.0, 3.0]
    save_safetensors(model, tmp_path / "bn.safetensors")  # holds num_batches_tracked as I64, as PyTorch does
    fresh = load_safetensors(tmp_path / "bn.safetensors", Sequential(BatchNorm2d(3)))
    np.testing.assert_array_equal(fresh[0].running_mean.data, [1.0, 2.0, 3.0])
    assert not fresh.training
