"""One training step of a 64-128-64-10 ReLU MLP at batch 64: TinyTorch against PyTorch (CPU).

A step is: zero the gradients, forward, cross-entropy, backward, optimizer step.
Both frameworks start from the same weights and see the same batch. Repeats are
interleaved (TinyTorch block, PyTorch block, TinyTorch block, ...), so a slow moment
of the machine hits both, and the medians over the blocks are reported.

    python benchmarks/bench_mlp_step.py [--optimizer adam|sgd] [--repeats 30] [--steps 50] [--threads 1]

Both frameworks run with the same number of threads (default 1: NumPy's BLAS and
PyTorch's intra-op pool). NOTE: at these sizes a matmul takes tens of microseconds,
and a multi-threaded BLAS on a busy machine can spend far longer waiting for its
threads than computing, which would measure the machine's load, not the framework.

PyTorch is optional: without it, only TinyTorch's time is printed.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/<name>.py`: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.steps import interleaved_timings, print_timing, step_parser, timing_row  # noqa: E402

SIZES = (64, 128, 64, 10)
BATCH = 64


def tinytorch_step(optimizer_name: str, x, y):
    """A TinyTorch model, its optimizer and a function that runs one training step."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import SGD, Adam
    from tinytorch.core.tensor import Tensor
    from tinytorch.recipes import digits_mlp

    model = digits_mlp(seed=0)  # the digits MLP 64-128-64-10 (Module 09's builder)
    opt = Adam(model.parameters(), lr=1e-3) if optimizer_name == "adam" else SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = CrossEntropyLoss()
    inputs = Tensor(x)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(inputs), y)
        loss.backward()
        opt.step()
        return loss.item()

    return model, step


def torch_step(torch, optimizer_name: str, x, y, weights: list):
    """The same network in PyTorch, with TinyTorch's initial weights copied in."""
    nn = torch.nn
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(w))
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def main(argv: list[str] | None = None) -> list[dict]:
    """Time both frameworks' training steps in interleaved blocks, print them, return one row per framework."""
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    args = parser.parse_args(argv)
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    model, tt_step = tinytorch_step(args.optimizer, x, y)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    steps = {"tinytorch": tt_step}
    if torch is not None:
        steps["pytorch"] = torch_step(torch, args.optimizer, x, y, [p.data.copy() for p in model.parameters()])
        first = {name: step() for name, step in steps.items()}  # same weights, same batch: same loss
        print(f"first-step loss: tinytorch {first['tinytorch']:.6f}, pytorch {first['pytorch']:.6f}")
    timings = interleaved_timings(steps, args.repeats, args.steps, args.threads)
    median = {name: t.median for name, t in timings.items()}

    print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, {args.optimizer}: "
          f"median of {args.repeats} blocks x {args.steps} steps")
    for name, timing in timings.items():
        print_timing(name, timing)
    if torch is None:
        print("  pytorch    not installed; only TinyTorch was measured")
    else:
        print(f"  ratio      {median['tinytorch'] / median['pytorch']:.2f}x (tinytorch / pytorch)")
    print(f"  threads    {args.threads} (BLAS and PyTorch)")
    return [timing_row("training step", name, t) | {"optimizer": args.optimizer, "threads": args.threads}
            for name, t in timings.items()]


if __name__ == "__main__":
    main()
