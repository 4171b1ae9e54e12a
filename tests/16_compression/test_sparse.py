"""Given code (sparse_given.py, no tasks; its subject is Module 18): CSR storage, the NumPy and scipy
CSR products, SparseLinear and to_sparse; then the timing tools (time_interleaved, compare_layer_times)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.compression import magnitude_prune
from tinytorch.compression import sparse as sparse_module
from tinytorch.compression.sparse import (
    LayerTime,
    SparseChoice,
    compare_layer_times,
    SparseLinear,
    csr_matmul,
    plan_sparse,
    time_interleaved,
    to_csr,
    to_sparse,
)
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.tensor import Tensor, manual_seed

from .conftest import make_cnn, make_mlp

BACKENDS = ["numpy", pytest.param("scipy", marks=pytest.mark.skipif(
    sparse_module.default_backend() != "scipy", reason="scipy is not installed (tinytorch[sparse])"))]
ATOL = 1e-5  # float32 products summed in a different order than the dense matmul


def sparse_weight(rng, shape, sparsity):
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < sparsity] = 0.0
    return w


def dense_product(w, x):
    return x.astype(np.float64) @ w.astype(np.float64).T


# ---- Task 16.15: CSR ----------------------------------------------------------------

@settings(max_examples=30)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
       seed=st.integers(0, 1000))
def test_to_csr_layout(rows, cols, sparsity, seed):
    w = sparse_weight(np.random.default_rng(seed), (rows, cols), sparsity)
    values, indices, indptr = to_csr(w)
    assert indptr.shape == (rows + 1,) and indptr[0] == 0 and indptr[-1] == values.size == np.count_nonzero(w)
    for i in range(rows):
        cols_i = indices[indptr[i]:indptr[i + 1]]
        np.testing.assert_array_equal(cols_i, np.flatnonzero(w[i]))
        np.testing.assert_array_equal(values[indptr[i]:indptr[i + 1]], w[i, cols_i])
    assert values.dtype == w.dtype


def test_to_csr_equals_scipy():
    sp = pytest.importorskip("scipy.sparse")
    w = sparse_weight(np.random.default_rng(1), (30, 17), 0.8)
    w[4] = 0.0  # an empty row
    ref = sp.csr_matrix(w)
    values, indices, indptr = to_csr(w)
    np.testing.assert_array_equal(values, ref.data)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(indptr, ref.indptr)
    with pytest.raises(ValueError, match=r"weight must be 2-D .* got shape \(2, 3, 4\)"):
        to_csr(np.ones((2, 3, 4)))


# ---- Task 16.16: the NumPy CSR product ------------------------------------------------

@settings(max_examples=30)
@given(rows=st.integers(1, 12), cols=st.integers(1, 12), batch=st.integers(1, 5),
       sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), seed=st.integers(0, 1000))
def test_csr_matmul_equals_dense(rows, cols, batch, sparsity, seed):
    rng = np.random.default_rng(seed)
    w = sparse_weight(rng, (rows, cols), sparsity)
    w[rng.integers(0, rows)] = 0.0  # at least one empty row: reduceat's trap
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    got = csr_matmul(*to_csr(w), x)
    assert got.shape == (batch, rows) and got.dtype == np.float32
    np.testing.assert_allclose(got, dense_product(w, x), atol=ATOL, rtol=1e-5)


def test_csr_matmul_in_chunks(monkeypatch):
    monkeypatch.setattr(sparse_module, "_CHUNK_ELEMENTS", 50)  # forces one batch row per chunk
    rng = np.random.default_rng(2)
    w = sparse_weight(rng, (20, 30), 0.7)
    x = rng.standard_normal((7, 30)).astype(np.float32)
    np.testing.assert_allclose(csr_matmul(*to_csr(w), x), dense_product(w, x), atol=ATOL)


# ---- Task 16.17: SparseLinear ---------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_equals_linear(backend, bias):
    manual_seed(0)
    linear = Linear(40, 24, bias=bias)
    magnitude_prune(Sequential(linear), 0.9)
    layer = SparseLinear.from_linear(linear, backend)
    rng = np.random.default_rng(0)
    for shape in [(1, 40), (5, 40), (2, 3, 40)]:
        x = Tensor(rng.standard_normal(shape))
        np.testing.assert_allclose(layer(x).data, linear(x).data, atol=ATOL, rtol=0)
    assert layer.nnz == np.count_nonzero(linear.weight.data) and abs(layer.sparsity - 0.9) < 1 / 960
    np.testing.assert_array_equal(layer.to_dense(), linear.weight.data)
    assert layer.parameters() == [] and not layer.training
    profiling = pytest.importorskip("tinytorch.profiling")
    assert profiling.count_flops(Sequential(layer), (5, 40)) == 2 * layer.nnz * 5  # only the stored weights work
    assert profiling.model_size_bytes(Sequential(layer)) == layer.nbytes
    assert layer.nbytes == layer.nnz * 12 + 25 * 8 + (24 * 4 if bias else 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_reaches_the_input_only(backend):
    manual_seed(1)
    linear = Linear(12, 7)
    magnitude_prune(Sequential(linear), 0.6)
    layer = SparseLinear.from_linear(linear, backend)
    data = np.random.default_rng(1).standard_normal((4, 12))
    grad_out = np.random.default_rng(2).standard_normal((4, 7)).astype(np.float32)
    x_dense, x_sparse = Tensor(data, requires_grad=True), Tensor(data, requires_grad=True)
    linear.eval()
    linear(x_dense).backward(grad_out)
    layer(x_sparse).backward(grad_out)
    np.testing.assert_allclose(x_sparse.grad, x_dense.grad, atol=ATOL)
    layer.train()
    with pytest.raises(RuntimeError, match="inference-only.*eval mode"):
        layer(x_sparse)
    with no_grad():
        np.testing.assert_allclose(layer(x_sparse).data, linear(x_dense).data, atol=ATOL)


def test_sparse_linear_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w = sparse_weight(rng, (64, 128), 0.95)
    b = rng.standard_normal(64).astype(np.float32)
    x = rng.standard_normal((8, 128)).astype(np.float32)
    expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    for backend in ("numpy", sparse_module.default_backend()):
        np.testing.assert_allclose(SparseLinear(w, b, backend)(Tensor(x)).data, expected, atol=ATOL)


def test_sparse_linear_bad_inputs():
    layer = SparseLinear(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"needs input of shape \(\.\.\., 3\), got \(2, 4\)"):
        layer(Tensor(np.ones((2, 4))))
    with pytest.raises(TypeError, match="expects a Tensor, got ndarray"):
        layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), got \(2,\)"):
        SparseLinear(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="backend must be one of .* got 'cuda'"):
        SparseLinear(np.eye(3), backend="cuda")
    with pytest.raises(TypeError, match="linear must be a Linear, got ReLU"):
        SparseLinear.from_linear(ReLU())


# ---- Task 16.18: to_sparse ------------------------------------------------------------

def choices_for(model, faster):
    """A plan saying, per Linear name, whether CSR was faster (no timing: the decision logic alone)."""
    plan = []
    for name, m in model.named_modules():
        if isinstance(m, Linear):
            fast = faster.get(name)
            times = (None, None) if fast is None else ((2.0, 1.0) if fast else (1.0, 2.0))
            plan.append(SparseChoice(name, m.weight.data.shape, 0.9, *times))
    return plan


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_sparse_swaps_exactly_where_faster(backend):
    model = make_mlp((16, 32, 24, 5), seed=4)
    magnitude_prune(model, 0.9)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    plan = choices_for(model, {"0": True, "2": False})
    new = to_sparse(model, backend=backend, plan=plan)
    assert isinstance(new[0], SparseLinear) and new[0].backend == backend
    assert type(new[2]) is Linear and type(new[4]) is Linear and new[2] is not model[2]
    assert not new.training and model.training
    x = Tensor(np.random.default_rng(4).standard_normal((3, 16)))
    model.eval()
    np.testing.assert_allclose(new(x).data, model(x).data, atol=ATOL)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])
    assert type(model[0]) is Linear  # the input model keeps its dense layers


def test_to_sparse_measures_a_clear_case():
    """97% sparse 1024x1024 at batch 1: CSR does 1/30 of the work and must win on any machine."""
    manual_seed(5)
    model = Sequential(Linear(1024, 1024), ReLU(), Linear(1024, 16))
    magnitude_prune(model, {"0": 0.97, "2": 0.1})
    plan = plan_sparse(model, min_sparsity=0.5, batch_size=1)
    assert [c.name for c in plan] == ["0", "2"]
    assert plan[0].use_sparse and plan[0].speedup > 1, plan[0]
    assert plan[1].dense_seconds is None and not plan[1].use_sparse  # below min_sparsity: not timed
    new = to_sparse(model, plan=plan)
    assert isinstance(new[0], SparseLinear) and isinstance(new[2], Linear)


def test_to_sparse_nested_and_bare_linear():
    class Wrapper(Module):
        def __init__(self):
            super().__init__()
            self.blocks = [Linear(6, 8), Linear(8, 3)]

        def forward(self, x):
            return self.blocks[1](self.blocks[0](x).maximum(0.0))

    model = Wrapper()
    new = to_sparse(model, plan=choices_for(model, {"blocks.0": False, "blocks.1": True}))
    assert isinstance(new.blocks[1], SparseLinear) and type(new.blocks[0]) is Linear
    x = Tensor(np.ones((2, 6)))
    np.testing.assert_allclose(new(x).data, model(x).data, atol=ATOL)
    linear = Linear(6, 4)
    assert isinstance(to_sparse(linear, plan=choices_for(linear, {"": True})), SparseLinear)


def test_to_sparse_and_plan_bad_inputs():
    model = make_mlp()
    with pytest.raises(ValueError, match=r"does not have: '0' \(20, 8\), '2' \(12, 20\) \(it has '0' \(16, 8\)"):
        to_sparse(model, plan=choices_for(make_mlp((8, 20, 12, 4)), {}))
    with pytest.raises(ValueError, match=r"min_sparsity must be a number in \[0, 1\], got 1.5"):
        plan_sparse(model, min_sparsity=1.5)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        to_sparse(model, batch_size=0)
    with pytest.raises(TypeError, match="model must be a tinytorch Module"):
        to_sparse("model")


def test_time_interleaved():
    import time

    slow, fast = time_interleaved([lambda: time.sleep(0.002), lambda: None], repeats=3, min_time=1e-3)
    assert slow >= 0.0019 and 0 < fast < slow / 10
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        time_interleaved([lambda: None], repeats=0)
    with pytest.raises(ValueError, match="min_time must be > 0 seconds, got 0"):
        time_interleaved([lambda: None], min_time=0)
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu', got 'gpu'"):
        time_interleaved([lambda: None], clock="gpu")
    # NOTE: no sleep-vs-work comparison on the CPU clock: a multi-threaded BLAS spins
    # its idle threads for a while after each call, and their CPU time counts too.
    (busy,) = time_interleaved([lambda: sum(range(20000))], repeats=3, clock="cpu")
    assert 1e-6 < busy < 1.0


def test_crossover_sparsity():
    from tinytorch.compression.sparse import crossover_sparsity

    # log(sparse/dense) goes from log 2 at 80% to log 0.5 at 90%: it crosses 0 half-way
    assert crossover_sparsity([0.5, 0.8, 0.9], [1, 1, 1], [4, 2, 0.5]) == pytest.approx(0.85)
    assert crossover_sparsity([0.9, 0.5], [1, 1], [0.5, 0.25]) == 0.5  # faster everywhere: the lowest point
    assert crossover_sparsity([0.5, 0.9], [1, 1], [2, 1.5]) is None  # never faster
    assert crossover_sparsity([0.5, 0.7, 0.9], [1, 1, 1], [0.5, 2, 0.5]) == pytest.approx(0.8)  # stays faster
    with pytest.raises(ValueError, match="one dense and one sparse time per sparsity"):
        crossover_sparsity([0.5], [1, 2], [1])


class Spin(Module):
    """Busy-waits `seconds` of wall time, then passes its input on: a layer of known cost."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        import time

        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return x


def test_compare_layer_times_feeds_each_model_its_own_activations():
    from tinytorch.compression import remove_pruned_units, structured_prune
    from tinytorch.profiling import flops_by_layer

    cnn = make_cnn(channels=(6, 8))
    small = remove_pruned_units(cnn, structured_prune(cnn, 0.5))
    cnn.eval()
    small.eval()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 1, 8, 8)))
    rows = compare_layer_times(cnn, small, x, repeats=1)
    before, after = flops_by_layer(cnn, x.shape), flops_by_layer(small, x.shape)
    assert [r.name for r in rows] == [name for name, _ in before] == [str(i) for i in range(10)]
    assert [r.kind for r in rows] == [type(layer).__name__ for layer in cnn]
    # a layer's FLOPs depend on the shape it was given: after's second conv (on 4x4 maps) sees 3 channels, not 6
    assert [(r.before_flops, r.after_flops) for r in rows] == [(b, a) for (_, b), (_, a) in zip(before, after)]
    assert rows[4].before_flops == 2 * 3 * 4 * 4 * 6 * 9 * 8 and rows[4].after_flops == 2 * 3 * 4 * 4 * 3 * 9 * 4
    assert rows[4].flop_ratio == 4.0 and rows[2].flop_ratio is None  # ReLU counts no FLOPs
    assert all(r.before_seconds > 0 and r.after_seconds > 0 for r in rows)
    assert not cnn.training and not small.training


def test_compare_layer_times_finds_the_slow_layer():
    x = Tensor(np.zeros((2, 3), dtype=np.float32))
    before = Sequential(Sequential(Spin(0.004)), Spin(0.0))  # nested Sequentials are opened up
    after = Sequential(Sequential(Spin(0.001)), Spin(0.0))
    slow, quick = compare_layer_times(before, after, x, repeats=3, clock="wall")
    assert (slow.name, quick.name, slow.kind) == ("0.0", "1", "Spin")
    assert slow.before_seconds >= 0.004 and slow.after_seconds >= 0.001
    # NOTE: 4 ms against 1 ms; on a loaded machine the longer spin is descheduled more
    # often (a load of 9 on 2 cores measured 8-9x), so the bound above is loose.
    assert 2.5 < slow.speedup < 20
    assert quick.before_seconds < 0.001 and quick.after_seconds < 0.001
    assert slow.speedup == slow.before_seconds / slow.after_seconds
    assert LayerTime("a", "Linear", 2.0, 1.0, 8, 0).flop_ratio is None


def test_compare_layer_times_bad_inputs():
    model = make_mlp()
    x = np.zeros((2, model[0].in_features), dtype=np.float32)
    with pytest.raises(TypeError, match="after must be a tinytorch Module, got str"):
        compare_layer_times(model, "smaller", x)
    with pytest.raises(ValueError, match=r"before has 5 layers and after has 4: .*same layers in the same order"):
        compare_layer_times(model, Sequential(*list(model)[:4]), x)
    swapped = Sequential(*list(model)[:4], ReLU())
    with pytest.raises(ValueError, match="layer '4' is a Linear in before but a ReLU in after"):
        compare_layer_times(model, swapped, x)
