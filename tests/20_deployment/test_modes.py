"""A model goes to PyTorch, safetensors and ONNX Runtime in the mode it is in, and its own mode stays as it was.

The model is `mode_checks.bn_dropout_cnn()`: BatchNorm2d and Dropout, trained a few steps,
so a copy in the wrong mode computes other outputs and moves its running statistics.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mode_checks import assert_same_twice, bn_dropout_cnn, inputs, modes, run, stats
from tinytorch.compression import prune_and_quantize
from tinytorch.core.layers import Linear, Sequential
from tinytorch.deploy import export_onnx, from_torch, load_safetensors, save_safetensors, to_torch

# NOTE: PyTorch's and ONNX Runtime's float32 kernels sum in another order than NumPy's
# BLAS; these outputs are below 10 in size, so a few ulps stay under 1e-6.
ATOL = 1e-6


@pytest.fixture(scope="module")
def trained():
    return bn_dropout_cnn()


def compressed(trained, kind: str):
    return {"float": lambda: copy.deepcopy(trained),
            "int8": lambda: prune_and_quantize(trained, 0.5),
            "calibrated": lambda: prune_and_quantize(trained, 0.5, calibration_data=inputs(2)),
            "kmeans": lambda: prune_and_quantize(trained, 0.5, bits=4, codebook="kmeans")}[kind]()


# ---- PyTorch ----

@pytest.mark.parametrize("kind", ["float", "int8", "kmeans"])
def test_the_torch_twin_of_an_eval_model_is_in_eval_mode(trained, kind):
    pytest.importorskip("torch")
    model, x = compressed(trained, kind), inputs()
    twin = to_torch(model)
    assert not twin.training and not any(m.training for m in twin.modules())
    assert_same_twice(twin, run(model, x), x, atol=ATOL)
    assert not model.training and not any(modes(model))  # the source's mode is left as it was


def test_the_torch_twin_carries_training_and_mixed_modes(trained):
    pytest.importorskip("torch")
    model = copy.deepcopy(trained)
    model[4].train()
    twin = to_torch(model)
    assert [m.training for m in twin] == [m.training for m in model] == [i == 4 for i in range(10)]
    model.train()
    assert all(m.training for m in to_torch(model).modules())


def test_from_torch_keeps_each_modules_mode_and_leaves_the_torch_module_alone(trained):
    torch = pytest.importorskip("torch")
    twin = to_torch(trained)
    twin[8].train()
    back = from_torch(twin)
    assert [m.training for m in back] == [m.training for m in twin] and not back.training
    x = inputs()
    back[8].eval()
    assert_same_twice(back, run(trained, x), x, atol=ATOL)
    layer = torch.nn.BatchNorm2d(3).eval()
    single = from_torch(layer)
    assert not single.training and not single[0].training and not layer.training


# ---- safetensors ----

@pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
def test_safetensors_files_carry_the_mode(trained, mode, tmp_path):
    pytest.importorskip("safetensors")
    model = copy.deepcopy(trained)
    if mode == "train":
        model.train()
    elif mode == "mixed":
        model[8].train()
    save_safetensors(model, tmp_path / "m.safetensors")
    fresh = bn_dropout_cnn(seed=5, steps=0).train()  # other weights, training mode
    assert load_safetensors(tmp_path / "m.safetensors", fresh) is fresh
    assert modes(fresh) == modes(model)
    if mode == "eval":
        x = inputs()
        assert_same_twice(fresh, run(trained, x), x)


def test_a_compressed_models_safetensors_carry_its_mode(trained, tmp_path):
    pytest.importorskip("safetensors")
    small = compressed(trained, "int8")
    save_safetensors(small, tmp_path / "m.safetensors")
    fresh = bn_dropout_cnn(seed=5, steps=0).train()
    load_safetensors(tmp_path / "m.safetensors", fresh)
    x = inputs()
    assert not any(modes(fresh))
    assert_same_twice(fresh, run(small, x), x, atol=ATOL)


def test_a_file_without_a_mode_leaves_the_models_mode_as_it_was(trained, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from tinytorch.deploy import torch_state_dict

    state = {k: np.ascontiguousarray(v) for k, v in torch_state_dict(trained).items()}
    (tmp_path / "m.safetensors").write_bytes(st.save(state, metadata={"format": "pt"}))
    for mode in (True, False):
        fresh = bn_dropout_cnn(seed=5, steps=0).train(mode)
        load_safetensors(tmp_path / "m.safetensors", fresh)
        assert modes(fresh) == [mode] * len(modes(fresh))


def _with_metadata(tmp_path, trained, training: str):
    st = pytest.importorskip("safetensors.numpy")
    from tinytorch.deploy import torch_state_dict

    state = {k: np.ascontiguousarray(v) for k, v in torch_state_dict(trained).items()}
    path = tmp_path / "m.safetensors"
    path.write_bytes(st.save(state, metadata={"format": "pt", "training": training}))
    return path


@pytest.mark.parametrize("training", ["[true, false]", '"eval"', "1", "[" * 30 + "]" * 30])
def test_modes_that_do_not_fit_the_model_are_refused_and_change_nothing(trained, training, tmp_path):
    path = _with_metadata(tmp_path, trained, training)
    fresh = bn_dropout_cnn(seed=5, steps=0).train()
    fresh[3].eval()
    before, flags = [p.data.copy() for p in fresh.parameters()] + stats(fresh), modes(fresh)
    with pytest.raises(ValueError, match="stored modes must be true/false, or a list of one per module"):
        load_safetensors(path, fresh)
    assert modes(fresh) == flags
    for a, b in zip(before, [p.data for p in fresh.parameters()] + stats(fresh)):
        np.testing.assert_array_equal(a, b)


def test_a_mode_list_of_the_right_length_that_names_no_mode_is_refused(trained, tmp_path):
    path = _with_metadata(tmp_path, trained, json.dumps([0] * 11))
    with pytest.raises(ValueError, match=r"stored modes must be true/false.*got \[0, 0"):
        load_safetensors(path, bn_dropout_cnn(seed=5, steps=0))


@pytest.mark.parametrize("training", ["[" * 100_000 + "]" * 100_000, "[tru", ""])
def test_mode_metadata_that_is_not_json_is_refused(trained, training, tmp_path):
    path = _with_metadata(tmp_path, trained, training)
    fresh = bn_dropout_cnn(seed=5, steps=0)
    before = [p.data.copy() for p in fresh.parameters()]
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        load_safetensors(path, fresh)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, fresh.parameters())) and not any(modes(fresh))


# ---- ONNX Runtime ----

@pytest.mark.parametrize("kind", ["float", "int8", "calibrated", "kmeans"])
def test_onnx_runtime_gives_the_eval_models_outputs(trained, kind, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tinytorch.deploy import onnx_session

    model, x = compressed(trained, kind), inputs()
    export_onnx(model, tmp_path / "m.onnx", (1, 1, 8, 8))
    assert not model.training and not any(modes(model))
    assert_same_twice(onnx_session(tmp_path / "m.onnx"), run(model, x), x, atol=ATOL)


def _all_training(model):
    return model.train()


def _one_dropout_training(model):
    model[4].train()
    return model


def _compressed_training(model):
    return prune_and_quantize(model, 0.5).train()


@pytest.mark.parametrize("prepare", [_all_training, _one_dropout_training, _compressed_training])
def test_a_model_in_training_or_mixed_mode_exports_the_inference_graph_and_keeps_its_modes(trained, prepare,
                                                                                           tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tinytorch.deploy import onnx_session

    model, x = prepare(copy.deepcopy(trained)), inputs()
    reference = run(copy.deepcopy(model).eval(), x)
    flags, before = modes(model), stats(model)
    assert any(flags)
    export_onnx(model, tmp_path / "m.onnx", (1, 1, 8, 8))
    assert modes(model) == flags  # each module's own mode, not the model's spread over all
    for a, b in zip(before, stats(model)):
        np.testing.assert_array_equal(a, b)
    assert_same_twice(onnx_session(tmp_path / "m.onnx"), reference, x, atol=ATOL)


@pytest.mark.parametrize("shape, dims", [((64,), 1), ((2, 3, 64), 3)])
def test_inputs_onnx_cannot_feed_a_linear_are_refused_up_front(shape, dims, tmp_path):
    pytest.importorskip("onnx")
    model = Sequential(Linear(64, 4)).eval()
    assert run(model, np.zeros(shape, np.float32)).shape == shape[:-1] + (4,)  # TinyTorch runs it
    with pytest.raises(ValueError, match=rf"layer '0' \(Linear\) would get a {dims}-D input .* ONNX's Gemm "
                                         r"takes 2-D inputs \(batch, features\)"):
        export_onnx(model, tmp_path / "m.onnx", shape)
    assert not (tmp_path / "m.onnx").exists() and not model.training
