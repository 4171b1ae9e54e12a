"""Task 16.1: measuring sparsity exactly."""
import numpy as np
import pytest

from tinytorch.compression import measure_sparsity, prunable_layers, sparsity_report
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Sequential


@pytest.mark.task("16.1")
def test_report_counts_zeros_of_every_prunable_weight(cnn, rng):
    for _, layer in prunable_layers(cnn):
        w = layer.weight.data
        w[rng.random(w.shape) < 0.3] = 0.0
    report = sparsity_report(cnn)
    layers = prunable_layers(cnn)
    assert [r.name for r in report] == [n for n, _ in layers] == ["0", "4", "9"]
    for row, (_, layer) in zip(report, layers):
        w = layer.weight.data
        assert row.shape == w.shape and row.params == w.size
        assert row.zeros == w.size - np.count_nonzero(w)
    total = sum(l.weight.data.size for _, l in layers)
    zeros = sum(l.weight.data.size - np.count_nonzero(l.weight.data) for _, l in layers)
    assert measure_sparsity(cnn) == zeros / total
    assert "total" in str(report) and "9" in str(report)


@pytest.mark.task("16.1")
def test_biases_and_batchnorm_do_not_count(cnn):
    cnn[0].bias.data[:] = 0.0
    cnn[1].weight.data[:] = 0.0
    assert measure_sparsity(cnn) == 0.0


@pytest.mark.task("16.1")
def test_bad_models_are_named():
    with pytest.raises(TypeError, match="model must be a tinytorch Module, got list"):
        measure_sparsity([1, 2])
    with pytest.raises(ValueError, match="no Linear or Conv2d"):
        measure_sparsity(Sequential(ReLU()))
