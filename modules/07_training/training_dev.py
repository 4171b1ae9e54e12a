# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 07: Training
#
# > The training loop: `train_step`, `fit` with its per-epoch history, `evaluate`, and a progress bar that knows when to stay quiet.
#
# Modules 01-06 gave us every ingredient: a model that maps inputs to predictions, a
# loss that scores them, autograd that turns the score into gradients, and an optimizer
# that turns gradients into better weights. Training is the loop that repeats those
# four steps over mini-batches, epoch after epoch:
#
# ```
# for each epoch:
#     for each batch (x, y):
#         zero the gradients      # they accumulate otherwise
#         loss = loss_fn(model(x), y)
#         loss.backward()
#         optimizer.step()
# ```
#
# Around that core sit the details that decide whether a loop is pleasant and honest:
# `model.train()` / `model.eval()` (Dropout and BatchNorm behave differently), no graph
# during evaluation (`no_grad`), a record of what happened (`history`), a clear error
# when the loss becomes NaN, and a progress bar on long runs that never clutters logs,
# test output or CI.
#
# Batches come from any iterable of `(x, y)` tuples; Module 08's `DataLoader` is the
# usual one (the loop itself does not import it).

# %%
#| default_exp core.training

# %%
#| export
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.checks import check_int
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor

# %% [markdown]
# ## A progress bar that knows when to be quiet
#
# A progress bar helps a person watching a terminal. Anywhere else it does harm: in a
# log file or a CI transcript it becomes hundreds of lines of control characters, and in
# a test it hides the output that matters. So the rule is: draw a bar only when standard
# output **is a terminal**, and never when asked not to, either per call
# (`progress=False`) or for the whole process (`TINYTORCH_QUIET=1`, which `tito test`
# sets). `progress=None` (the default) and `progress=True` both mean "when possible".
#
# The bar is drawn with `rich`. When it is off, `progress_bar` yields an object with the
# same methods that does nothing, so the loop has no `if` around every update.

# %%
#| export
def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a progress bar should be drawn: stdout is a terminal, and neither
    `progress=False` nor the environment variable `TINYTORCH_QUIET=1` silences it."""
    if progress is False:
        return False
    if os.environ.get("TINYTORCH_QUIET", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


class _SilentBar:
    """The do-nothing stand-in used when no bar is drawn."""

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Ignore the update."""


class _RichBar:
    """A thin wrapper so callers see only `advance`."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Move the bar `steps` forward, optionally changing its label."""
        fields = {} if description is None else {"description": description}
        self._progress.update(self._task, advance=steps, **fields)


@contextmanager
def progress_bar(total: int | None, description: str, progress: bool | None = None) -> Iterator[Any]:
    """A progress bar over `total` steps (`with progress_bar(...) as bar: bar.advance()`),
    or a silent stand-in when `progress_enabled(progress)` is False."""
    if not progress_enabled(progress):
        yield _SilentBar()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stdout)) as bar:
        yield _RichBar(bar, bar.add_task(description, total=total))


# %% [markdown]
# ## One training step
#
# The four lines of the loop, as a function, so they can be tested (and reused by
# Module 16's fine-tuning) on their own. It returns the loss as a Python float: keeping
# the loss *Tensor* around would keep its whole graph alive until the next step.
#
# `# NOTE:` a NaN or infinite loss means the run is already lost (a learning rate too
# large, a log of zero). Stepping on it would silently fill every weight with NaN, so we
# stop with an error that says where it happened and what usually helps.

# %% nbgrader={"grade": false, "grade_id": "train-step", "solution": true}
#| export
def train_step(model: Module, optimizer: Any, loss_fn: Callable[[Tensor, Any], Tensor],
               x: Tensor, y: Any) -> float:
    """One optimisation step on the batch `(x, y)`; returns the batch's loss as a float.

    Task 07.1: zero the gradients, forward, loss, backward, check the loss is finite,
    step the optimizer.

    Args:
        model: maps `x` to predictions.
        optimizer: has `zero_grad()` and `step()` (Module 06).
        loss_fn: `loss_fn(prediction, y)` returns a one-element Tensor.
        x, y: the batch.

    Raises:
        FloatingPointError: the loss is NaN or infinite (no step is taken).
    """
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    value = float(loss.item())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss became {value}; no step was taken. Try a smaller learning rate "
            f"(optimizer lr={getattr(optimizer, 'lr', '?')}) or check the inputs for NaN")
    loss.backward()
    optimizer.step()
    return value
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-train-step", "locked": true, "points": 2}
def _toy_problem(seed: int = 0):
    """Two Gaussian blobs in 2-D, labelled 0 and 1: linearly separable."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.5, 0.6, (100, 2)), rng.normal(1.5, 0.6, (100, 2))]).astype(np.float32)
    y = np.repeat([0, 1], 100).astype(np.int64)
    order = rng.permutation(200)
    return x[order], y[order]


def test_unit_train_step():
    """Task 07.1"""
    from tinytorch.core.layers import Linear
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import SGD

    x, y = _toy_problem()
    model = Linear(2, 2)
    opt = SGD(model.parameters(), lr=0.5)
    losses = [train_step(model, opt, CrossEntropyLoss(), Tensor(x), y) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0], f"20 steps should halve the loss: {losses[0]:.3f} -> {losses[-1]:.3f}"
    before = model.weight.data.copy()
    try:
        train_step(model, opt, lambda p, t: p.sum() * float("nan"), Tensor(x), y)
    except FloatingPointError:
        pass
    else:
        raise AssertionError("a NaN loss must raise FloatingPointError")
    np.testing.assert_array_equal(model.weight.data, before)


# %% [markdown]
# ## Evaluation
#
# Accuracy is the share of examples whose highest-scoring class is the label. Two
# switches matter and both must be undone afterwards, because `evaluate` is often
# called *inside* a training run:
#
# * `model.eval()`: Dropout off, BatchNorm on its running statistics. We remember
#   `model.training` and restore it, so the caller's mode is unchanged.
# * `no_grad()`: no graph is recorded; evaluation uses less memory and time.

# %% nbgrader={"grade": false, "grade_id": "evaluate", "solution": true}
#| export
def evaluate(model: Module, loader: Iterable) -> float:
    """Classification accuracy of `model` over every `(x, y)` batch of `loader`, in [0, 1].

    Task 07.2: eval mode and `no_grad` while predicting; count `argmax == label`;
    restore the model's mode.

    Raises:
        ValueError: the loader yields no examples.
    """
    was_training = model.training
    correct = total = 0
    ### BEGIN SOLUTION
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                x, y = batch[0], batch[1]
                logits = model(x)
                labels = np.asarray(y.data if isinstance(y, Tensor) else y).astype(np.int64)
                correct += int((logits.data.argmax(axis=-1) == labels).sum())
                total += len(labels)
    finally:
        model.train(was_training)
    ### END SOLUTION
    if total == 0:
        raise ValueError("evaluate: the loader yielded no examples")
    return correct / total


# %% nbgrader={"grade": true, "grade_id": "test-evaluate", "locked": true, "points": 2}
def test_unit_evaluate():
    """Task 07.2"""
    from tinytorch.core.layers import Linear

    x, y = _toy_problem()
    model = Linear(2, 2)
    model.weight.data[...] = [[-1.0, -1.0], [1.0, 1.0]]  # class 1 when x0 + x1 > 0
    model.bias.data[...] = 0.0
    expected = np.mean((x.sum(axis=1) > 0).astype(int) == y)
    batches = [(Tensor(x[i:i + 64]), y[i:i + 64]) for i in range(0, 200, 64)]
    assert np.isclose(evaluate(model, batches), expected)
    assert model.training, "evaluate must restore training mode"
    model.eval()
    evaluate(model, batches)
    assert not model.training, "evaluate must restore eval mode too"


# %% [markdown]
# ## fit: the whole loop
#
# `fit` runs `epochs` passes over the loader and returns a **history**: one dict per
# epoch with `epoch` (from 1), `loss` (the mean training loss over the epoch's
# examples, each batch weighted by its size), `seconds`, and `val_accuracy` when a
# validation loader is given. A list of plain dicts is easy to print, plot or turn into
# a table. The model is put in training mode at the start of every epoch, because
# evaluating in between switches it to eval mode and back.

# %% nbgrader={"grade": false, "grade_id": "fit", "solution": true}
#| export
def fit(model: Module, optimizer: Any, loss_fn: Callable[[Tensor, Any], Tensor], loader: Iterable,
        epochs: int, val_loader: Iterable | None = None, progress: bool | None = None) -> list[dict]:
    """Train `model` for `epochs` passes over `loader`; one history row per epoch.

    Task 07.3: per epoch, `model.train()`, `train_step` on every batch, the size-weighted
    mean loss, optionally `evaluate(model, val_loader)`; advance the progress bar.

    Args:
        model: the network.
        optimizer: a Module 06 optimizer over the model's parameters.
        loss_fn: e.g. `CrossEntropyLoss()`.
        loader: yields `(x, y)` batches, e.g. a `DataLoader`.
        epochs: number of passes, at least 1.
        val_loader: when given, `val_accuracy` is measured after every epoch.
        progress: `False` never draws a bar; `None`/`True` draw one on a terminal
            unless `TINYTORCH_QUIET=1`.

    Returns:
        `[{"epoch": 1, "loss": ..., "seconds": ..., ("val_accuracy": ...)}, ...]`.

    Raises:
        ValueError: `epochs` is not a positive int, or the loader yields no batches.
        FloatingPointError: the loss became NaN or infinite.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    try:
        total = epochs * len(loader)
    except TypeError:  # a generator has no length; the bar then counts without a total
        total = None
    history: list[dict] = []
    with progress_bar(total, f"epoch 1/{epochs}", progress) as bar:
        ### BEGIN SOLUTION
        for epoch in range(1, epochs + 1):
            model.train()
            start, loss_sum, seen = time.perf_counter(), 0.0, 0
            for batch in loader:
                x, y = batch[0], batch[1]
                loss = train_step(model, optimizer, loss_fn, x, y)
                n = len(y)
                loss_sum, seen = loss_sum + loss * n, seen + n
                bar.advance(1, f"epoch {epoch}/{epochs} loss {loss_sum / seen:.4f}")
            if seen == 0:
                raise ValueError(f"fit: the loader yielded no batches in epoch {epoch} (a generator is "
                                 f"used up after one pass; give a DataLoader or a list for epochs > 1)")
            row = {"epoch": epoch, "loss": loss_sum / seen, "seconds": time.perf_counter() - start}
            if val_loader is not None:
                row["val_accuracy"] = evaluate(model, val_loader)
            history.append(row)
        ### END SOLUTION
    return history


# %% nbgrader={"grade": true, "grade_id": "test-fit", "locked": true, "points": 3}
def test_unit_fit():
    """Task 07.3"""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    x, y = _toy_problem()
    batches = [(Tensor(x[i:i + 32]), y[i:i + 32]) for i in range(0, 200, 32)]
    model = Sequential(Linear(2, 8), ReLU(), Linear(8, 2))
    history = fit(model, Adam(model.parameters(), lr=0.05), CrossEntropyLoss(), batches, epochs=5,
                  val_loader=batches, progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.95, history[-1]


# %% [markdown]
# ## Demo: digits with an MLP
#
# A 64-128-64-10 network on the bundled digits (Module 08 serves the batches), three
# epochs of Adam; the demo prints the loss and test accuracy it reaches.
# `benchmarks/bench_digits_train.py` runs the full recipe and times it.

# %%
def demo_digits_mlp(epochs: int = 3) -> list[dict]:
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import manual_seed
    from tinytorch.data import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits()
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
    model = Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))
    history = fit(model, Adam(model.parameters(), lr=1e-3), CrossEntropyLoss(), train, epochs,
                  val_loader=test)
    for row in history:
        print(f"epoch {row['epoch']}: loss {row['loss']:.4f}, test accuracy {row['val_accuracy']:.3f}")
    return history


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_train_step()
    test_unit_evaluate()
    test_unit_fit()
    assert demo_digits_mlp()[-1]["val_accuracy"] > 0.85


# %%
if __name__ == "__main__":
    test_module()
    print("Module 07: all inline tests passed")
