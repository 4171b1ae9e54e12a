"""Task 19.7 and the module's acceptance checks on the digits MLP 64-512-512-10.

Sizes in the table equal `compressed_size` and the bytes of the files `save_compressed`
writes; the structured variant (units physically removed) is faster than the baseline in
the same run.
"""

import numpy as np
import pytest

from tinytorch.benchmarking import VARIANTS, Benchmark, count_weights, standard_variants
from tinytorch.compression import CompressedModel, compressed_size, load_compressed, measure_sparsity, save_compressed
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.profiling import count_parameters

from .conftest import make_mlp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def size_table(variants, digits):
    _, _, x_test, y_test = digits
    return Benchmark(variants, (x_test, y_test), metrics=("accuracy", "size")).run()


@pytest.mark.task("19.7")
def test_variants_are_built_and_the_input_is_untouched(wide_digits, variants):
    model, train, _ = wide_digits
    assert tuple(variants) == VARIANTS
    assert len({id(m) for m in variants.values()} | {id(model)}) == 6  # all distinct objects
    assert measure_sparsity(variants["baseline"]) == measure_sparsity(model) == 0.0
    assert abs(measure_sparsity(variants["pruned"]) - 0.9) <= 1 / 300_000
    assert isinstance(variants["int8"], CompressedModel) and isinstance(variants["pruned+int8"], CompressedModel)
    hidden = variants["structured"][0].weight.data
    assert np.count_nonzero(np.abs(hidden).sum(axis=1)) == 128  # 75% of 512 units gone (or zeroed)


@pytest.mark.task("19.7")
def test_structured_variant_is_physically_smaller(variants):
    structured = variants["structured"]
    assert [tuple(p.shape) for p in structured.parameters()] == [(128, 64), (128,), (128, 128), (128,), (10, 128), (10,)]


@pytest.mark.task("19.7")
def test_zero_epochs_means_no_fine_tuning():
    model = make_mlp((64, 16, 10))
    variants = standard_variants(model, [], CrossEntropyLoss(), epochs=0)  # an empty loader is never read
    assert tuple(variants) == VARIANTS


@pytest.mark.task("19.7")
@pytest.mark.parametrize("kwargs", [{"sparsity": 1.0}, {"structured_ratio": -0.1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        standard_variants(make_mlp((64, 16, 10)), [], CrossEntropyLoss(), **kwargs)


def test_bad_epochs_or_model():
    with pytest.raises(ValueError):
        standard_variants(make_mlp((64, 16, 10)), [], CrossEntropyLoss(), epochs=-1)
    with pytest.raises(TypeError, match="model must be a tinytorch Module"):
        standard_variants("model", [], CrossEntropyLoss())


@pytest.mark.task("19.6")
def test_table_sizes_are_the_real_bytes(variants, size_table, tmp_path):
    for name in ("int8", "pruned+int8"):
        model = variants[name]
        path = tmp_path / f"{name}.ttz"
        written = save_compressed(model, path)
        assert size_table[name].bytes == compressed_size(model).file_bytes == written == path.stat().st_size
        assert load_compressed(path)  # the file is a real model
    for name in ("baseline", "pruned", "structured"):
        assert size_table[name].bytes == 4 * count_parameters(variants[name])
    bytes_ = {name: size_table[name].bytes for name in VARIANTS}
    assert bytes_["pruned"] == bytes_["baseline"]  # float zeros are stored like any number
    assert bytes_["pruned+int8"] < bytes_["int8"] < bytes_["baseline"] / 3
    assert size_table["pruned"].nonzero < 0.11 * size_table["baseline"].nonzero
    assert size_table["pruned+int8"].nonzero == count_weights(variants["pruned+int8"])[1]


@pytest.mark.task("19.6")
def test_table_accuracies(wide_digits, variants, size_table, digits):
    _, _, x_test, y_test = digits
    baseline = size_table["baseline"].accuracy
    assert baseline == wide_digits[2] and baseline >= 0.85
    # INT8 keeps the float model's answers within a point; the loaded file gives the same answers.
    assert abs(size_table["int8"].accuracy - baseline) <= 0.01
    assert abs(size_table["pruned+int8"].accuracy - size_table["pruned"].accuracy) <= 0.01
    assert all(size_table[name].accuracy >= 0.7 for name in VARIANTS)
    assert size_table.pareto("bytes")[-1] == "pruned+int8"  # the smallest is always on the front


@pytest.mark.task("19.7")
def test_structured_variant_is_faster_than_the_baseline_in_the_same_run(variants, digits):
    _, _, x_test, y_test = digits
    models = {"baseline": variants["baseline"], "structured": variants["structured"]}
    result = Benchmark(models, (x_test, y_test), metrics="latency", batch_size=256).run(repeats=15, warmup=3)
    # NOTE: 75% of the units removed leaves ~1/12 of the FLOPs; on a loaded 2-core machine the
    # paired median ratio still stays far above this generous 1.5x.
    assert result.speedup("structured") > 1.5, result.to_markdown()
    assert result["structured"].latency.median < result["baseline"].latency.median, result.to_markdown()
