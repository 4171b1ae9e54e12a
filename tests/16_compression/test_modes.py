"""A model's mode (eval or training) is part of it: `.ttz` files keep it, wrappers report it.

Every model here has BatchNorm2d and Dropout, trained a few steps so that the running
statistics are far from their initial 0 and 1: in training mode such a model computes
other outputs (batch statistics, random zeros) and moves its statistics on every call.
"""
import copy
import os

import numpy as np
import pytest

from tinytorch.compression import CompressedModel, load_compressed, prune_and_quantize, save_compressed
from tinytorch.compression import container
from tinytorch.compression.container import from_bytes, to_bytes
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from mode_checks import assert_same_twice, bn_dropout_cnn, inputs, modes, run, stats

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def trained():
    model = bn_dropout_cnn()
    bn = model[1]
    assert np.abs(bn.running_mean.data).max() > 0.1 and np.abs(bn.running_var.data - 1).max() > 0.1
    return model


def test_the_trained_model_computes_otherwise_in_training_mode(trained):
    """The premise of every test below: the mode changes the outputs and the statistics."""
    model, x = copy.deepcopy(trained), inputs()
    reference, before = run(model, x), stats(model)
    model.train()
    assert np.abs(run(model, x) - reference).max() > 0.05
    assert any(not np.array_equal(a, b) for a, b in zip(before, stats(model)))


@pytest.mark.parametrize("kind", ["float", "int8", "calibrated", "kmeans"])
def test_an_eval_model_comes_back_in_eval_mode_by_every_ttz_path(trained, kind, tmp_path):
    x = inputs()
    model = {"float": lambda: copy.deepcopy(trained),
             "int8": lambda: prune_and_quantize(trained, 0.5),
             "calibrated": lambda: prune_and_quantize(trained, 0.5, calibration_data=inputs(2)),
             "kmeans": lambda: prune_and_quantize(trained, 0.5, bits=4, codebook="kmeans")}[kind]()
    assert not model.training and not any(modes(model))
    reference = run(model, x)  # the saved model's own (in-memory) outputs
    if kind == "float":
        np.testing.assert_array_equal(reference, run(trained, x))
    save_compressed(model, tmp_path / "m.ttz")
    loaded = load_compressed(tmp_path / "m.ttz")
    assert isinstance(loaded, CompressedModel) and not loaded.training and not any(modes(loaded))
    assert_same_twice(loaded, reference, x, atol=1e-6)
    np.testing.assert_array_equal(run(loaded, x), reference)  # a file holds the model exactly


@pytest.mark.parametrize("kind", ["float", "kmeans"])
def test_a_model_saved_in_training_mode_comes_back_in_training_mode(trained, kind):
    model = copy.deepcopy(trained).train()
    if kind == "kmeans":
        model = prune_and_quantize(model, 0.5, bits=4, codebook="kmeans")
    assert model.training
    loaded = from_bytes(to_bytes(model))
    assert loaded.training and all(modes(loaded))
    before = stats(loaded)
    run(loaded, inputs())
    assert any(not np.array_equal(a, b) for a, b in zip(before, stats(loaded)))  # batch statistics, as saved


def test_mixed_modes_come_back_module_by_module(trained):
    model = copy.deepcopy(trained)
    model[4].train()  # one Dropout in training mode, the rest in eval
    loaded = from_bytes(to_bytes(model))
    assert modes(loaded) == [False] + modes(model)  # the wrapper, then the model's own flags
    assert [i for i, m in enumerate(loaded.model) if m.training] == [4]


def test_a_layer_listed_twice_keeps_its_mode(trained):
    shared = Linear(5, 5)
    model = Sequential(copy.deepcopy(trained), shared, ReLU(), shared)
    model.eval()
    model[2].train()
    loaded = from_bytes(to_bytes(model))
    assert [m.training for m in loaded.model] == [False, False, True, False]


@pytest.mark.parametrize("stored", [[True], [1, 0], "eval", None, 0])
def test_a_file_whose_modes_do_not_fit_its_model_is_refused(trained, stored, monkeypatch):
    monkeypatch.setattr(container, "module_modes", lambda root: stored)
    blob = to_bytes(copy.deepcopy(trained))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="stored modes must be true/false, or a list of one per module"):
        from_bytes(blob)


@pytest.mark.parametrize("name", ["format1_float_cnn.ttz", "format1_int8_mlp.ttz", "format2_int8_cnn.ttz",
                                  "format2_shared_mlp.ttz", "format3_bn_dropout_cnn.ttz"])
def test_files_of_older_versions_hold_no_mode_and_load_in_eval_mode(name):
    loaded = load_compressed(os.path.join(DATA, name))
    assert not loaded.training and not any(modes(loaded))


def test_a_version_3_file_of_the_trained_model_gives_its_eval_outputs(trained):
    """Written by format version 3 (which stored no mode) from `bn_dropout_cnn()` in eval mode."""
    with open(os.path.join(DATA, "format3_bn_dropout_cnn.ttz"), "rb") as f:
        assert f.read(6) == b"TTZIP\x03"
    loaded = load_compressed(os.path.join(DATA, "format3_bn_dropout_cnn.ttz"))
    x = inputs()
    # NOTE: 1e-4, not 0: the file was trained on one machine, `trained` on this one (BLAS
    # kernels round differently); training mode would be off by more than 0.05
    assert_same_twice(loaded, run(trained, x), x, atol=1e-4)


# ---- wrappers report their layers' mode ----

def test_prune_and_quantize_reports_the_mode_of_its_layers(trained):
    small = prune_and_quantize(trained, 0.5)
    assert small.training is False and small.model.training is False
    small.train()
    assert small.training and all(modes(small))
    small.eval()
    assert not small.training and not any(modes(small))
    small.model.train()  # the wrapper has no mode of its own: it is its model's
    assert small.training
    small.training = False
    assert small.model.training is False


def test_a_wrapper_around_an_eval_model_says_eval(trained):
    wrapper = CompressedModel(copy.deepcopy(trained))
    assert wrapper.training is False
    assert CompressedModel(Sequential(Linear(2, 2))).training is True
    assert copy.deepcopy(wrapper).training is False


def test_distill_runs_the_teacher_in_eval_mode_and_leaves_each_of_its_modules_as_it_was(trained):
    from tinytorch.compression import distill
    from tinytorch.core.spatial import Flatten
    from tinytorch.core.optimizers import SGD
    from tinytorch.data.loader import DataLoader, TensorDataset

    teacher = copy.deepcopy(trained)
    teacher[8].train()  # mixed: one Dropout in training mode
    flags, before = modes(teacher), stats(teacher)
    student = Sequential(Flatten(), Linear(64, 5))
    loader = DataLoader(TensorDataset(inputs(3, 32), np.zeros(32, np.int64)), batch_size=16)
    distill(student, teacher, SGD(student.parameters(), lr=0.01), loader, 1, progress=False)
    assert modes(teacher) == flags
    for a, b in zip(before, stats(teacher)):
        np.testing.assert_array_equal(a, b)  # run in eval mode: its statistics did not move
