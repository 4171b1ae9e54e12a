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
# # Module 16, given code: the experiments' bench
#
# No task here. What the lesson's experiments share (`tinytorch/compression/lab.py`):
# quick mode and the plot folder, the small test model, the digits MLP and its training recipe (trained once
# per seed and cached), forward-pass timing with NumPy's BLAS on one thread, the two
# networks the speed experiment times, and one function that draws a line plot to PNG.

# %%
#| default_exp compression.lab

# %%
#| export
import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

_TRAINED: dict = {}
_PLOTS: list = []


def quick_mode() -> bool:
    """True when `TINYTORCH_QUICK=1`: small sizes and few epochs for a fast smoke run."""
    return os.environ.get("TINYTORCH_QUICK") == "1"


def plots_folder() -> Path:
    """`$TINYTORCH_PLOTS`, else `./compression-plots` (a temporary folder in quick mode), created."""
    if not _PLOTS:
        default = tempfile.mkdtemp() if quick_mode() else "compression-plots"
        _PLOTS.append(Path(os.environ.get("TINYTORCH_PLOTS") or default))
    _PLOTS[0].mkdir(parents=True, exist_ok=True)
    return _PLOTS[0]


def toy_mlp(seed: int = 0):
    """The lesson's small test model: Linear(8, 16), ReLU, Linear(16, 12), ReLU, Linear(12, 4)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(8, 16), ReLU(), Linear(16, 12), ReLU(), Linear(12, 4))


def digits_setup(seed: int = 0):
    """The digits loaders (train shuffled with `seed`, test in one batch) and a fresh 64-128-64-10 MLP."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed
    from tinytorch.data.loader import DataLoader, TensorDataset
    from tinytorch.datasets import load_digits

    x_train, y_train, x_test, y_test = load_digits(flat=True)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=seed)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=len(y_test))
    manual_seed(seed)
    return Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10)), train, test


def trained_digits(seed: int = 0):
    """(model, train, test): the MLP trained with Adam (lr 3e-3, 25 epochs; 5 in quick mode), once per seed."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import fit

    model, train, test = digits_setup(seed)
    if seed not in _TRAINED:
        epochs = 5 if quick_mode() else 25
        fit(model, Adam(model.parameters(), lr=3e-3), CrossEntropyLoss(), train, epochs, progress=False)
        _TRAINED[seed] = model.state_dict()
    model.load_state_dict(_TRAINED[seed])
    return model, train, test


@contextlib.contextmanager
def _one_blas_thread():
    # NOTE: on a shared machine a multi-threaded BLAS waits for its threads far longer
    # than it computes; on one thread the CPU clock is the latency of an idle machine.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "wall"
        return
    with threadpool_limits(1, user_api="blas"):
        yield "cpu"


def forward_times(models, x, repeats: int) -> list[float]:
    """Median seconds per forward pass of each model on `x`: interleaved rounds, eval mode, no graph."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.profiling import time_interleaved

    for m in models:
        m.eval()
    with no_grad(), _one_blas_thread() as clock:
        return time_interleaved([lambda m=m: m(x) for m in models], repeats=repeats, clock=clock)


def speed_nets():
    """(name, model, input shape): an MLP 512-2048-2048-10 and the digits CNN, batch 256 (small in quick mode)."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
    from tinytorch.core.tensor import manual_seed

    width, batch = (256, 32) if quick_mode() else (2048, 256)
    manual_seed(0)
    mlp = Sequential(Linear(512, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 10))
    cnn = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                     Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    return [(f"MLP 512-{width}-{width}-10", mlp, (batch, 512)), ("digits CNN", cnn, (batch, 1, 8, 8))]


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (no window opens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(name: str, lines, xlabel: str, ylabel: str, title: str, hline=None, yscale: str = "linear") -> Path:
    """Draw `lines`, each `(xs, ys, style, label)`, with an optional dashed `(y, label)` line; save as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if hline is not None:
        ax.axhline(hline[0], color="gray", linestyle="--", label=hline[1])
    for xs, ys, style, label in lines:
        ax.plot(xs, ys, style, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale=yscale)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = plots_folder() / name
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
