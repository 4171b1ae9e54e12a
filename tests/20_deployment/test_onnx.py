"""Module 20, Tasks 20.2-20.4: ONNX files that onnx.checker accepts and ONNX Runtime runs with our outputs."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
numpy_helper = onnx.numpy_helper

from .conftest import every_layer_model, ours
from tinytorch.compression import prune_and_quantize
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.deploy import export_onnx, onnx_session, run_onnx

FLOAT_ATOL = 1e-5  # the tolerance for float models
INT8_ATOL = 1e-4  # ... and for INT8 models, against the CompressedModel's own output


def shape_of(x: np.ndarray) -> tuple[int, ...]:
    return (1, *x.shape[1:])


def ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.mark.task("20.3")
@pytest.mark.parametrize("name", ["mlp", "cnn", "removed"])
def test_float_models_run_in_onnx_runtime_with_our_outputs(models, name, tmp_path):
    model, x = models[name]
    path = tmp_path / f"{name}.onnx"
    size = export_onnx(model, path, shape_of(x))
    assert size == path.stat().st_size
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    np.testing.assert_allclose(run_onnx(onnx_session(path), x), ours(model, x), rtol=0, atol=FLOAT_ATOL)
    assert "DequantizeLinear" not in ops(path)


@pytest.mark.task("20.3")
def test_graph_is_plain_onnx(models, tmp_path):
    export_onnx(models["cnn"][0], tmp_path / "cnn.onnx", (1, 1, 8, 8))
    assert ops(tmp_path / "cnn.onnx") == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv",
                                          "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm", "Identity"]
    export_onnx(models["mlp"][0], tmp_path / "mlp.onnx", (1, 64))
    assert ops(tmp_path / "mlp.onnx") == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Identity"]


@pytest.mark.task("20.2")
def test_int8_model_is_qdq_and_matches_the_compressed_model(models, tmp_path):
    model, x = models["int8"]
    path = tmp_path / "int8.onnx"
    export_onnx(model, path, (1, 64))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert ops(path) == ["DequantizeLinear", "Gemm", "Relu", "DequantizeLinear", "Gemm", "Relu",
                         "DequantizeLinear", "Gemm", "Identity"]
    arrays = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    layers = [m for m in model.model if hasattr(m, "qweight")]
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    for node, layer in zip(dq, layers):
        values, scale, zero = (arrays[i] for i in node.input)
        assert values.dtype == np.int8 and zero.dtype == np.int8
        np.testing.assert_array_equal(values, layer.qweight.values)  # the pruned zeros travel as int8 zeros
        np.testing.assert_array_equal(scale, layer.qweight.scale)  # one scale per output channel
        assert scale.shape == (values.shape[0],)
        assert [a.i for a in node.attribute if a.name == "axis"] == [0]
    # int8 weights: the file is about a quarter of the float model's
    float_path = tmp_path / "float.onnx"
    export_onnx(models["mlp"][0], float_path, (1, 64))
    assert path.stat().st_size < 0.3 * float_path.stat().st_size
    np.testing.assert_allclose(run_onnx(onnx_session(path), x), ours(model, x), rtol=0, atol=INT8_ATOL)


@pytest.mark.task("20.2")
def test_int8_cnn_and_per_tensor_scales(models, tmp_path, rng):
    cnn, x = models["cnn"]
    for options in ({}, {"per_channel": False, "int8_bias": True}):
        model = prune_and_quantize(cnn, 0.7, **options).eval()
        export_onnx(model, tmp_path / "q.onnx", (1, 1, 8, 8))
        assert ops(tmp_path / "q.onnx").count("DequantizeLinear") == 3
        np.testing.assert_allclose(run_onnx(onnx_session(tmp_path / "q.onnx"), x), ours(model, x), rtol=0, atol=INT8_ATOL)


@pytest.mark.task("20.3")
def test_calibrated_model_rounds_its_inputs_like_module_15(models, tmp_path):
    mlp, x = models["mlp"]
    model = prune_and_quantize(mlp, 0.5, calibration_data=x[:100]).eval()
    export_onnx(model, tmp_path / "cal.onnx", (1, 64))
    assert ops(tmp_path / "cal.onnx")[:4] == ["Clip", "QuantizeLinear", "DequantizeLinear", "DequantizeLinear"]
    # Node by node, the graph computes exactly Module 15's integer path; inputs beyond the
    # calibrated range (x * 3) saturate at 127 levels on both sides.
    plain = onnx_session(tmp_path / "cal.onnx", optimize=False)
    for batch in (x, x * 3):
        np.testing.assert_allclose(run_onnx(plain, batch), ours(model, batch), rtol=0, atol=INT8_ATOL)
    # NOTE: optimized, ONNX Runtime fuses Q/DQ + Gemm into an int8 kernel that rounds some
    # inputs to the neighbouring level: a few outputs move by about one input step.
    fused = run_onnx(onnx_session(tmp_path / "cal.onnx"), x)
    assert np.mean(np.abs(fused - ours(model, x)) <= INT8_ATOL) > 0.9
    assert np.mean(fused.argmax(1) == ours(model, x).argmax(1)) > 0.99


@pytest.mark.task("20.4")
@pytest.mark.parametrize("batch", [1, 7, 360])
def test_batch_dimension_is_dynamic(models, tmp_path, batch):
    model, x = models["cnn"]
    export_onnx(model, tmp_path / "cnn.onnx", (1, 1, 8, 8))
    dims = onnx.load(str(tmp_path / "cnn.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    session = onnx_session(tmp_path / "cnn.onnx")
    np.testing.assert_allclose(run_onnx(session, x[:batch]), ours(model, x[:batch]), rtol=0, atol=FLOAT_ATOL)


@pytest.mark.task("20.3")
def test_every_supported_layer_runs_in_onnx_runtime(tmp_path, rng):
    model = every_layer_model(rng)
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    export_onnx(model, tmp_path / "all.onnx", (1, 2, 8, 8))
    np.testing.assert_allclose(run_onnx(onnx_session(tmp_path / "all.onnx"), x), ours(model, x), rtol=0, atol=FLOAT_ATOL)


@pytest.mark.task("20.2")
def test_sparse_file_is_smaller_and_runs_the_same(models, tmp_path):
    model, x = models["int8"]
    dense = export_onnx(model, tmp_path / "dense.onnx", (1, 64))
    sparse = export_onnx(model, tmp_path / "sparse.onnx", (1, 64), sparse=True)
    assert sparse < dense
    assert "Constant" in ops(tmp_path / "sparse.onnx")
    np.testing.assert_array_equal(run_onnx(onnx_session(tmp_path / "sparse.onnx"), x),
                                  run_onnx(onnx_session(tmp_path / "dense.onnx"), x))


@pytest.mark.task("20.4")
def test_session_uses_the_threads_asked_for(models, tmp_path):
    export_onnx(models["mlp"][0], tmp_path / "m.onnx", (1, 64))
    options = onnx_session(tmp_path / "m.onnx", threads=2).get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 2
    with pytest.raises(ValueError, match="threads"):
        onnx_session(tmp_path / "m.onnx", threads=0)


def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    class Scale(Module):
        def forward(self, x):
            return x * 2

    path = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match=r"'1'.*Scale.*supported layers"):
        export_onnx(Sequential(Linear(4, 4), Scale()), path, (1, 4))
    with pytest.raises(ValueError, match="input_shape"):
        export_onnx(Sequential(Linear(4, 4)), path, (1, 5))
    for bad in ((), (1, 0), [1, "4"], (1, True)):
        with pytest.raises(ValueError, match="input_shape"):
            export_onnx(Sequential(Linear(4, 4)), path, bad)
    assert not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        export_onnx(Sequential(Linear(4, 4)), tmp_path / "no" / "such" / "dir.onnx", (1, 4))
