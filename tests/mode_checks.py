"""What the tests of a model's mode share: a trained BatchNorm + Dropout CNN, and checks that it computes as saved."""
from __future__ import annotations

import numpy as np

from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Dropout, Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD
from tinytorch.core.spatial import BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed


def bn_dropout_cnn(seed: int = 0, steps: int = 5) -> Sequential:
    """Conv-BN-ReLU-Pool-Dropout-Flatten-Linear-ReLU-Dropout-Linear on 1x8x8, trained `steps` SGD steps, in eval mode.

    The training moves BatchNorm's running statistics well away from 0 and 1, so a
    model in training mode (batch statistics, random zeros) computes other outputs.
    """
    manual_seed(seed)
    model = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2), Dropout(0.3), Flatten(),
                       Linear(64, 16), ReLU(), Dropout(0.5), Linear(16, 5))
    rng = np.random.default_rng(seed)
    opt, loss_fn = SGD(model.parameters(), lr=0.05), CrossEntropyLoss()
    for _ in range(steps):
        loss = loss_fn(model(Tensor(inputs(rng, 16))), rng.integers(0, 5, 16))
        model.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def inputs(seed: int | np.random.Generator = 1, n: int = 6) -> np.ndarray:
    """`n` random 1x8x8 float32 images, off-centre (mean 1.5, spread 2) as unnormalised data is."""
    return (np.random.default_rng(seed).standard_normal((n, 1, 8, 8)) * 2 + 1.5).astype(np.float32)


def run(model, x: np.ndarray) -> np.ndarray:
    """The outputs of a TinyTorch model, a PyTorch module or an ONNX Runtime session for the batch `x`."""
    if isinstance(model, Module):
        with no_grad():
            return model(Tensor(x)).data
    if hasattr(model, "get_inputs"):
        from tinytorch.deploy import run_onnx

        return run_onnx(model, x)
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def stats(model) -> list[np.ndarray]:
    """Copies of every buffer (running statistics) of a TinyTorch model or PyTorch module; none for a session."""
    if isinstance(model, Module):
        return [b.data.copy() for _, b in model.named_buffers()]
    if hasattr(model, "named_buffers"):
        return [b.detach().numpy().copy() for _, b in model.named_buffers()]
    return []


def modes(model) -> list[bool]:
    return [m.training for m in model.modules()]


def assert_same_twice(model, reference: np.ndarray, x: np.ndarray, atol: float = 0.0) -> None:
    """Two runs of `model` (see `run`) in a row give `reference` (to `atol`), and its running statistics do not move."""
    before = stats(model)
    for _ in range(2):
        np.testing.assert_allclose(run(model, x), reference, rtol=0, atol=atol)
    after = stats(model)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
