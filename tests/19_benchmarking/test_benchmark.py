"""Task 19.6: Benchmark checks its input, measures every metric against references, and reports."""
import numpy as np
import pytest

from tinytorch.benchmarking import Benchmark, BenchmarkResult, BenchmarkRow, LatencyStats
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import evaluate
from tinytorch.data.loader import DataLoader, TensorDataset
from tinytorch.profiling import count_flops

from .conftest import Costly, make_mlp


@pytest.fixture
def data(rng):
    return rng.random((40, 64), dtype=np.float32), rng.integers(0, 10, 40)


def argmax_accuracy(model, x, y):
    """The reference: a plain forward pass in eval mode, argmax, compare."""
    model.eval()
    out = model(Tensor(x)).data
    model.train()
    return float(np.mean(out.argmax(axis=1) == y))


# ---------------------------------------------------------------- bad input

def test_empty_models(data):
    with pytest.raises(ValueError, match="at least one model, got an empty dict"):
        Benchmark({}, data)


def test_models_must_be_a_dict_of_modules(data):
    with pytest.raises(TypeError, match="dict of name -> Module, got list"):
        Benchmark([make_mlp()], data)
    with pytest.raises(TypeError, match=r"models\['b'\] must be a tinytorch Module, got str"):
        Benchmark({"a": make_mlp(), "b": "model.ttz"}, data)


@pytest.mark.parametrize("metrics", [("accuracy", "speed"), ("latency", "Size"), ()])
def test_unknown_or_no_metric(data, metrics):
    with pytest.raises(ValueError, match="metrics must be drawn from accuracy, latency, size"):
        Benchmark({"m": make_mlp()}, data, metrics=metrics)


@pytest.mark.parametrize("kwargs, match", [
    ({"repeats": 0}, "repeats must be an int >= 1, got 0"),
    ({"repeats": -3}, "repeats must be an int >= 1, got -3"),
    ({"repeats": 1.0}, "repeats"),
    ({"repeats": True}, "repeats"),
    ({"warmup": -1}, "warmup must be an int >= 0, got -1"),
])
def test_bad_repeats_or_warmup(data, kwargs, match):
    bench = Benchmark({"m": make_mlp()}, data, metrics=("accuracy",))
    with pytest.raises(ValueError, match=match):
        bench.run(**kwargs)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_bad_batch_size(data, batch_size):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        Benchmark({"m": make_mlp()}, data, batch_size=batch_size)


def test_bad_data(data):
    x, y = data
    with pytest.raises(TypeError, match=r"\(x, y\) pair of arrays or a DataLoader"):
        Benchmark({"m": make_mlp()}, 42)
    with pytest.raises(TypeError, match=r"\(x, y\) pair of arrays or a DataLoader"):
        Benchmark({"m": make_mlp()}, x)
    with pytest.raises(ValueError, match=r"as many labels as inputs.*\(40, 64\).*\(39,\)"):
        Benchmark({"m": make_mlp()}, (x, y[:-1]))
    with pytest.raises(TypeError, match="batches"):
        Benchmark({"m": make_mlp()}, [])


# ---------------------------------------------------------------- measurements

@pytest.mark.task("19.6")
def test_accuracy_matches_argmax_reference_for_every_data_form(data):
    x, y = data
    models = {"a": make_mlp(seed=1), "b": make_mlp(seed=2)}
    forms = {
        "arrays": (x, y),
        "tensors": (Tensor(x), Tensor(y.astype(np.float32))),
        "loader": DataLoader(TensorDataset(x, y), batch_size=7, shuffle=True, seed=3),
    }
    for form, d in forms.items():
        result = Benchmark(models, d, metrics="accuracy", batch_size=16).run()
        for name, model in models.items():
            assert result[name].accuracy == pytest.approx(argmax_accuracy(model, x, y), abs=1e-12), form
            assert result[name].accuracy == evaluate(model, DataLoader(TensorDataset(x, y), batch_size=40))


@pytest.mark.task("19.6")
def test_size_columns(data, rng):
    mlp = make_mlp((64, 24, 10))
    cnn = Sequential(Conv2d(1, 3, 3, padding=1), BatchNorm2d(3), ReLU(), Flatten(), Linear(3 * 64, 10))
    result = Benchmark({"mlp": mlp}, data, metrics="size").run()
    row = result["mlp"]
    params = 64 * 24 + 24 + 24 * 10 + 10
    assert (row.bytes, row.params, row.nonzero) == (4 * params, params, params)
    assert row.flops == 2 * (64 * 24 + 24 * 10) == count_flops(mlp, (1, 64))
    assert row.accuracy is None and row.latency is None
    images = (rng.random((10, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 10))
    row = Benchmark({"cnn": cnn}, images, metrics="size").run()["cnn"]
    assert row.flops == count_flops(cnn, (1, 1, 8, 8)) > 0
    assert row.bytes == 4 * (row.params + 2 * 3)  # + BatchNorm running statistics


@pytest.mark.task("19.6")
def test_latency_on_a_fake_clock(data, clock):
    log = []
    models = {
        "ref": Costly("ref", clock, [9.0, 0.40, 0.30, 0.50, 0.40], log),  # first call cold
        "fast": Costly("fast", clock, [9.0, 0.10, 0.15, 0.10, 0.20], log),
    }
    result = Benchmark(models, data, metrics=("latency",), batch_size=8).run(repeats=4, warmup=1, timer=clock)
    ref, fast = result["ref"].latency, result["fast"].latency
    assert isinstance(ref, LatencyStats)
    assert ref.median == pytest.approx(0.40) and fast.median == pytest.approx(0.125)
    assert ref.iqr == pytest.approx(np.subtract(*np.percentile([0.4, 0.3, 0.5, 0.4], [75, 25])))
    np.testing.assert_allclose(result.times["ref"], [0.40, 0.30, 0.50, 0.40])
    # Per-round ratios 4, 2, 5, 2 -> median 3 (not 0.40 / 0.125 = 3.2).
    assert result.speedup("fast") == pytest.approx(3.0)
    # The other way round: ratios 1/4, 1/2, 1/5, 1/2 -> median 0.375, not 1/3 (medians of ratios
    # are not reciprocal when the count is even).
    assert result.speedup("ref", reference="fast") == pytest.approx(0.375)
    assert len(log) == 10 and {rows for *_, rows in log} == {8}


def test_latency_batch_is_fixed_size_cycled_from_the_data(data):
    x, y = data
    bench = Benchmark({"m": make_mlp()}, (x[:5], y[:5]), batch_size=12)
    batch = bench.latency_batch()
    assert batch.shape == (12, 64)
    np.testing.assert_array_equal(batch.data, x[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]])


@pytest.mark.task("19.6")
def test_run_restores_modes_and_leaves_weights_alone(data):
    a, b = make_mlp(seed=1), make_mlp(seed=2)
    b.eval()
    before = a.state_dict()
    Benchmark({"a": a, "b": b}, data, batch_size=16).run(repeats=2, warmup=1)
    assert a.training and not b.training
    assert all(np.array_equal(before[k], v) for k, v in a.state_dict().items())


@pytest.mark.task("19.6")
def test_a_wider_model_is_slower_in_the_same_run():
    """Real timing: a 64-512-512-10 MLP against 64-64-64-10 on batch 256 (~60x fewer FLOPs)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 64), dtype=np.float32), rng.integers(0, 10, 256)
    wide, narrow = make_mlp((64, 512, 512, 10)), make_mlp((64, 64, 64, 10))
    result = Benchmark({"wide": wide, "narrow": narrow}, (x, y), metrics="latency").run(repeats=15, warmup=3)
    # NOTE: generous margin: the FLOP ratio is ~60x; a loaded 2-core machine still shows > 1.5x.
    assert result.speedup("narrow") > 1.5, result.to_markdown()
    assert result["narrow"].latency.median < result["wide"].latency.median


# ---------------------------------------------------------------- the result table

def hand_made_result():
    rows = [
        BenchmarkRow("base", 0.93, LatencyStats(0.010, 0.009, 0.012, 0.011, 0.008), 1000, 250, 250, 500),
        BenchmarkRow("half", 0.93, LatencyStats(0.006, 0.005, 0.007, 0.006, 0.005), 1000, 250, 125, 500),
        BenchmarkRow("small", 0.90, LatencyStats(0.012, 0.011, 0.013, 0.012, 0.011), 300, 250, 125, 500),
        BenchmarkRow("tiny", 0.80, LatencyStats(0.012, 0.011, 0.013, 0.012, 0.011), 300, 250, 50, 500),
    ]
    times = {"base": np.array([0.010, 0.011]), "half": np.array([0.005, 0.0055]),
             "small": np.array([0.012, 0.012]), "tiny": np.array([0.012, 0.012])}
    return BenchmarkResult(rows, times, ("accuracy", "latency", "size"), batch_size=64)


@pytest.mark.task("19.6")
def test_pareto_of_the_result():
    result = hand_made_result()
    # Bytes: base and half tie on (1000, 0.93), both on the front; tiny is beaten by small.
    assert result.pareto("bytes") == ["base", "half", "small"]
    # Latency: half is fastest and most accurate.
    assert result.pareto("latency") == ["half"]
    with pytest.raises(ValueError, match="cost must be one of bytes, latency, got 'flops'"):
        result.pareto("flops")


@pytest.mark.task("19.6")
def test_missing_metrics_are_explained(data):
    result = Benchmark({"m": make_mlp()}, data, metrics="size").run()
    with pytest.raises(ValueError, match="needs the 'latency' metric; this run measured size"):
        result.speedup("m")
    with pytest.raises(ValueError, match="needs the 'accuracy' metric"):
        result.pareto("bytes")
    with pytest.raises(KeyError, match="no model named 'x'; the table has 'm'"):
        result["x"]


@pytest.mark.task("19.6")
def test_markdown_table():
    table = hand_made_result().to_markdown()
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["model", "accuracy", "latency ms (median)", "IQR ms", "speed-up", "bytes", "params",
                      "non-zero", "FLOPs/example", "Pareto front"]
    assert set(lines[1].replace("|", "")) == {"-"}
    rows = {cells[0]: cells for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:6])}
    assert rows["base"][1:6] == ["93.00%", "10", "3", "1.00x", "1,000"]
    assert rows["half"][4] == "2.00x" and rows["half"][-1] == "bytes, latency"
    assert rows["tiny"][-1] == "" and rows["small"][-1] == "bytes"
    assert "batch of 64" in table and "median of 2 interleaved rounds" in table
    assert str(hand_made_result()) == table


@pytest.mark.task("19.6")
def test_markdown_with_some_metrics_only(data):
    table = Benchmark({"m": make_mlp()}, data, metrics="accuracy").run().to_markdown()
    assert table.splitlines()[0] == "| model | accuracy |"


@pytest.mark.task("19.6")
def test_plot_writes_png(tmp_path):
    path = hand_made_result().plot(tmp_path / "variants.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.task("19.6")
def test_plot_needs_accuracy_and_a_cost(data, tmp_path):
    only_acc = Benchmark({"m": make_mlp()}, data, metrics="accuracy").run()
    with pytest.raises(ValueError, match="'size' or 'latency'"):
        only_acc.plot(tmp_path / "a.png")
    no_acc = Benchmark({"m": make_mlp()}, data, metrics="size").run()
    with pytest.raises(ValueError, match="needs the 'accuracy' metric"):
        no_acc.plot(tmp_path / "b.png")
    latency_only = Benchmark({"m": make_mlp()}, data, metrics=("accuracy", "latency")).run(repeats=2)
    assert latency_only.plot(tmp_path / "c.png").exists()
