"""Module 07: train_step, evaluate, fit and the progress bar's quiet rules, then short
training runs on the bundled digits (fewer epochs and a looser bar than
benchmarks/bench_digits_train.py, which runs the full recipes)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import is_grad_enabled
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import evaluate, fit, progress_bar, progress_enabled, train_step


def blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.5, 0.6, (n, 2)), rng.normal(1.5, 0.6, (n, 2))]).astype(np.float32)
    y = np.repeat([0, 1], n).astype(np.int64)
    order = rng.permutation(2 * n)
    return x[order], y[order]


def batches_of(x, y, size):
    return [(Tensor(x[i:i + size]), y[i:i + size]) for i in range(0, len(y), size)]


class Spy(Module):
    """Wraps a model and records (training mode, grad mode) on every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x):
        self.calls.append((self.training, is_grad_enabled()))
        return self.inner(x)


@pytest.mark.task("07.1")
def test_train_step_equals_one_manual_sgd_step(rng):
    manual_seed(0)
    model = Linear(3, 2)
    x, y = rng.standard_normal((5, 3)).astype(np.float32), np.array([0, 1, 1, 0, 1])
    w0, b0 = model.weight.data.copy(), model.bias.data.copy()
    # Reference: softmax cross-entropy gradient in NumPy, one SGD step with lr 0.1.
    logits = x @ w0.T + b0
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected_loss = -np.mean(np.log(p[np.arange(5), y]))
    d = (p - np.eye(2)[y]) / 5
    opt = SGD(model.parameters(), lr=0.1)
    model.weight.grad = np.full_like(w0, 100.0)  # stale gradient: train_step must clear it
    loss = train_step(model, opt, CrossEntropyLoss(), Tensor(x), y)
    assert isinstance(loss, float) and np.isclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(model.weight.data, w0 - 0.1 * d.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.data, b0 - 0.1 * d.sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.task("07.1")
def test_train_step_refuses_a_nan_loss_without_stepping():
    model = Linear(2, 1)
    before = model.weight.data.copy()
    x = Tensor(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(FloatingPointError, match=r"nan.*lr=0\.1"):
        train_step(model, SGD(model.parameters(), lr=0.1), MSELoss(), x, np.zeros((1, 1), np.float32))
    np.testing.assert_array_equal(model.weight.data, before)


@pytest.mark.task("07.2")
def test_evaluate_counts_argmax_hits_and_restores_the_mode():
    x, y = blobs()
    model = Linear(2, 2)
    model.weight.data[...] = [[-1.0, -1.0], [1.0, 1.0]]
    model.bias.data[...] = 0.0
    spy = Spy(model)
    expected = np.mean((x.sum(1) > 0).astype(int) == y)
    assert evaluate(spy, batches_of(x, y, 25)) == pytest.approx(expected)
    assert spy.training and all(call == (False, False) for call in spy.calls), spy.calls
    spy.eval()
    evaluate(spy, batches_of(x, y, 25))
    assert not spy.training


@pytest.mark.task("07.2")
def test_evaluate_accepts_tensor_labels_and_rejects_an_empty_loader():
    model = Linear(2, 3)
    x = np.eye(2, dtype=np.float32)
    labels = model(Tensor(x)).data.argmax(1)
    assert evaluate(model, [(Tensor(x), Tensor(labels.astype(np.float32)))]) == 1.0
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, [])


@pytest.mark.task("07.2")
def test_evaluate_restores_the_mode_when_the_model_fails():
    class Broken(Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        evaluate(model, [(Tensor(np.zeros((1, 2))), np.zeros(1))])
    assert model.training


@pytest.mark.task("07.3")
def test_fit_returns_one_row_per_epoch_and_learns():
    manual_seed(1)
    x, y = blobs()
    train = batches_of(x, y, 16)
    model = Sequential(Linear(2, 8), ReLU(), Linear(8, 2))
    history = fit(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), train, 6,
                  val_loader=train, progress=False)
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert set(history[0]) == {"epoch", "loss", "seconds", "val_accuracy"}
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["val_accuracy"] >= 0.95
    assert "val_accuracy" not in fit(model, Adam(model.parameters()), CrossEntropyLoss(), train, 1,
                                     progress=False)[0]


@pytest.mark.task("07.3")
def test_fit_loss_is_the_size_weighted_mean_of_the_batches():
    # With lr=0 nothing changes, so the epoch loss is exactly the loss over all examples.
    manual_seed(2)
    x, y = blobs(n=25)  # 50 examples in batches of 16, 16, 16, 2
    model = Linear(2, 2)
    full = CrossEntropyLoss()(model(Tensor(x)), y).item()
    history = fit(model, SGD(model.parameters(), lr=1e-12), CrossEntropyLoss(), batches_of(x, y, 16), 1,
                  progress=False)
    assert history[0]["loss"] == pytest.approx(full, rel=1e-5)


@pytest.mark.task("07.3")
def test_fit_trains_in_training_mode_after_each_evaluation():
    x, y = blobs(n=10)
    spy = Spy(Sequential(Linear(2, 4), Dropout(0.1), Linear(4, 2)))
    fit(spy, SGD(spy.parameters(), lr=0.01), CrossEntropyLoss(), batches_of(x, y, 10), 2,
        val_loader=batches_of(x, y, 20), progress=False)
    modes = [training for training, _ in spy.calls]
    assert modes == [True, True, False, True, True, False], modes


@pytest.mark.task("07.3")
def test_fit_matches_a_hand_written_loop():
    x, y = blobs()
    make = lambda: Sequential(Linear(2, 5), ReLU(), Linear(5, 2))  # noqa: E731
    manual_seed(3)
    a = make()
    fit(a, SGD(a.parameters(), lr=0.1, momentum=0.9), CrossEntropyLoss(), batches_of(x, y, 32), 3, progress=False)
    manual_seed(3)
    b = make()
    opt, loss_fn = SGD(b.parameters(), lr=0.1, momentum=0.9), CrossEntropyLoss()
    for _ in range(3):
        for xb, yb in batches_of(x, y, 32):
            opt.zero_grad()
            loss_fn(b(xb), yb).backward()
            opt.step()
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.task("07.3")
def test_fit_works_with_a_loader_without_length():
    x, y = blobs(n=10)
    model = Linear(2, 2)
    history = fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(),
                  (b for b in batches_of(x, y, 5)), 1, progress=False)
    assert len(history) == 1


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_fit_rejects_bad_epochs(epochs):
    model = Linear(2, 2)
    with pytest.raises(ValueError, match=r"epochs must be an int >= 1, got"):
        fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), [], epochs, progress=False)


@pytest.mark.task("07.3")
def test_fit_rejects_an_empty_loader():
    model = Linear(2, 2)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), [], 1, progress=False)


@pytest.mark.task("07.3")
def test_fit_names_the_epoch_when_a_generator_runs_dry():
    x, y = blobs(n=10)
    model = Linear(2, 2)
    with pytest.raises(ValueError, match="no batches in epoch 2"):
        fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(),
            (b for b in batches_of(x, y, 5)), 2, progress=False)


# --- the progress bar ----------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def use_terminal(monkeypatch):
    # NOTE: called inside the test body: pytest's output capture swaps sys.stdout at the
    # start of the call phase, so a fixture's replacement would be undone.
    out = FakeTerminal()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.delenv("TINYTORCH_QUIET", raising=False)
    return out


def test_progress_only_on_a_terminal_and_when_not_silenced(monkeypatch):
    use_terminal(monkeypatch)
    assert progress_enabled(None) and progress_enabled(True)
    assert not progress_enabled(False)
    monkeypatch.setenv("TINYTORCH_QUIET", "1")
    assert not progress_enabled(None) and not progress_enabled(True)
    monkeypatch.setenv("TINYTORCH_QUIET", "0")
    assert progress_enabled(None)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a file or a pipe
    assert not progress_enabled(None)


@pytest.mark.task("07.3")
def test_fit_draws_a_bar_on_a_terminal(monkeypatch):
    terminal = use_terminal(monkeypatch)
    x, y = blobs(n=10)
    model = Linear(2, 2)
    fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), batches_of(x, y, 5), 2)
    assert "epoch 2/2" in terminal.getvalue()


@pytest.mark.task("07.3")
@pytest.mark.parametrize("how", ["progress=False", "TINYTORCH_QUIET=1", "not a terminal"])
def test_fit_stays_quiet_when_asked_or_not_on_a_terminal(how, monkeypatch):
    terminal = use_terminal(monkeypatch)
    x, y = blobs(n=10)
    model = Linear(2, 2)
    args = dict(progress=False) if how == "progress=False" else {}
    if how == "TINYTORCH_QUIET=1":
        monkeypatch.setenv("TINYTORCH_QUIET", "1")
    out = terminal
    if how == "not a terminal":
        out = io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
    fit(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), batches_of(x, y, 5), 2, **args)
    assert out.getvalue() == ""


def test_progress_bar_silent_stand_in_accepts_updates(monkeypatch):
    terminal = use_terminal(monkeypatch)  # a terminal, so only the silencing keeps it quiet
    monkeypatch.setenv("TINYTORCH_QUIET", "1")
    with progress_bar(3, "work") as bar:
        bar.advance()
        bar.advance(2, "done")
    assert terminal.getvalue() == "", "a silenced bar must print nothing"
    monkeypatch.setenv("TINYTORCH_QUIET", "0")
    with progress_bar(3, "work") as bar:
        bar.advance(3, "done")
    assert "done" in terminal.getvalue(), "the same calls draw a bar when not silenced"


# --- the bundled digits, briefly ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.task("07.3")
def test_digits_mlp_and_cnn_learn_quickly():
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.data import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits()
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=360)
    mlp = Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))
    fit(mlp, SGD(mlp.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4), CrossEntropyLoss(), train, 8,
        progress=False)
    # NOTE: measured under the OpenBLAS kernels Haswell, Prescott and SkylakeX (the same here) and
    # over seeds 0-2: the MLP reaches 94.2-95.6%, the CNN 92.2-93.1%. 90% keeps twice that spread.
    assert evaluate(mlp, test) >= 0.90

    x_train, y_train, x_test, y_test = load_digits(flat=False)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=360)
    cnn = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                     Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    fit(cnn, Adam(cnn.parameters(), lr=3e-3), CrossEntropyLoss(), train, 6, progress=False)
    assert evaluate(cnn, test) >= 0.90
