"""Module 18's public names import from their documented place, and it builds on Module 16's package."""
from pathlib import Path

import tinytorch.acceleration as acceleration

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ["to_csr", "csr_matmul", "SparseLinear", "to_sparse", "plan_sparse", "crossover_sparsity",
            "compare_layer_times", "LayerTime", "SparseChoice", "Roofline", "measure_roofline",
            "matmul_intensity", "attainable_flops", "layer_bytes", "layer_intensities"]


def test_contract_names_are_exported():
    missing = [name for name in CONTRACT if not hasattr(acceleration, name)]
    assert not missing, f"tinytorch.acceleration lacks {missing}"
    assert sorted(acceleration.__all__) == sorted(set(acceleration.__all__))
    for name in acceleration.__all__:
        assert getattr(acceleration, name) is not None, name


def test_the_lesson_imports_compression_through_its_package():
    source = (ROOT / "modules" / "18_acceleration" / "acceleration_dev.py").read_text(encoding="utf-8")
    assert "from tinytorch.compression import" in source
    assert "tinytorch.compression." not in source  # no reaching into Module 16's submodules
