"""One training step of the digits CNN at batch 64: TinyTorch against PyTorch (CPU).

The network is the course's small CNN for 8x8 digits:
Conv(1->8, 3x3, pad 1), ReLU, MaxPool 2, Conv(8->16, 3x3, pad 1), ReLU, MaxPool 2,
Flatten, Linear(64, 10). A step is: zero the gradients, forward, cross-entropy,
backward, Adam step. Both frameworks start from the same weights and see the same
batch; repeats are interleaved (TinyTorch block, PyTorch block, ...) so a slow moment
of the machine hits both, and the medians over the blocks are reported.

Two more tables show how the time of a convolution (forward and backward, batch 64,
16x16 images) follows its number of filters F, as pruning whole filters (Module 16)
changes it, next to the FLOP count of Module 14:

* one layer Conv(16 -> F): its matrix products shrink with F, but im2col of its input
  (16 channels, whatever F is) is a fixed cost;
* a pair Conv(16 -> F), ReLU, Conv(F -> 16): removing a filter of the first layer also
  removes an input channel of the second, so every part of the work shrinks with F.

    python benchmarks/bench_cnn_step.py [--repeats 30] [--steps 50] [--threads 1] [--quick]

Both frameworks run with the same number of threads (default 1: NumPy's BLAS and
PyTorch's intra-op pool). NOTE: at these sizes a matmul takes tens of microseconds,
and a multi-threaded BLAS on a busy machine can spend far longer waiting for its
threads than computing, which would measure the machine's load, not the framework.

PyTorch is optional: without it, only TinyTorch's times are printed.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/<name>.py`: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.steps import interleaved_timings, print_timing, step_parser, timing_row  # noqa: E402

BATCH = 64


def tinytorch_cnn():
    """The digits CNN in TinyTorch (Module 09's builder; weights drawn where the generator stands)."""
    from tinytorch.recipes import digits_cnn

    return digits_cnn(seed=None)


def torch_cnn(torch):
    """The same network in PyTorch."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))


def tinytorch_step(model, x, y):
    """A function running one Adam training step of `model` on `(x, y)`."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor

    opt, loss_fn, inputs = Adam(model.parameters(), lr=1e-3), CrossEntropyLoss(), Tensor(x)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(inputs), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_step(torch, model, x, y):
    """The same step in PyTorch."""
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def conv_block(filters: int, channels: int, pair: bool):
    """Conv(channels -> filters), and with `pair` a ReLU and Conv(filters -> channels) after it."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Sequential
    from tinytorch.core.spatial import Conv2d

    layers = [Conv2d(channels, filters, 3, padding=1)]
    if pair:
        layers += [ReLU(), Conv2d(filters, channels, 3, padding=1)]
    return Sequential(*layers)


def forward_backward(model, x):
    """A function running forward and backward of `model` on `x` (the input needs its gradient too)."""
    from tinytorch.core.tensor import Tensor

    inputs = Tensor(x, requires_grad=True)

    def step() -> None:
        model.zero_grad()
        inputs.grad = None
        model(inputs).sum().backward()

    return step


def step_timings(args, x, y) -> dict:
    """Both frameworks' Adam steps on the digits CNN from the same weights: `Timing` per framework."""
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    ours = tinytorch_cnn()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    steps = {"tinytorch": tinytorch_step(ours, x, y)}
    if torch is not None:
        theirs = torch_cnn(torch)
        with torch.no_grad():
            for (_, p), q in zip(ours.named_parameters(), theirs.parameters()):
                q.copy_(torch.from_numpy(p.data))
        steps["pytorch"] = torch_step(torch, theirs, x, y)
        first = {name: step() for name, step in steps.items()}  # same weights, same batch: same loss
        print(f"first-step loss: tinytorch {first['tinytorch']:.6f}, pytorch {first['pytorch']:.6f}")
    return interleaved_timings(steps, args.repeats, args.steps, args.threads)


def conv_rows(args, images, pair: bool, title: str, widths=(64, 32, 16, 8)) -> list[dict]:
    """Forward + backward of `conv_block` at each number of filters: time and FLOPs beside the widest's."""
    from tinytorch.core.tensor import manual_seed
    from tinytorch.profiling import count_flops

    manual_seed(0)
    models = {f: conv_block(f, 16, pair) for f in widths}
    timings = interleaved_timings({f: forward_backward(m, images) for f, m in models.items()},
                                  max(args.repeats // 3, 3), max(args.steps // 5, 3), args.threads)
    flops = {f: count_flops(m, images.shape) for f, m in models.items()}
    print(f"{title}, 3x3, padding 1, forward + backward, input {images.shape}:")
    rows = []
    for f in widths:
        t, widest = timings[f], timings[widths[0]]
        rows.append({"table": title, "filters": f, "ms": 1e3 * t.median, "spread": t.spread,
                     "time_vs_widest": t.median / widest.median, "flops_vs_widest": flops[f] / flops[widths[0]]})
        flag = "" if t.steady else f"  [!] blocks disagree (spread {t.spread:.0%})"
        print(f"  F = {f:2d}  {rows[-1]['ms']:8.3f} ms ({t.spread:.0%})   time {rows[-1]['time_vs_widest']:.2f}, "
              f"forward FLOPs {rows[-1]['flops_vs_widest']:.3f} of F = {widths[0]}{flag}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Time the training steps and the convolution widths, print the tables, return their rows."""
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the convolution tables at batch 8: a check that it runs")
    args = parser.parse_args(argv)
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    timings = step_timings(args, x, y)
    print(f"digits CNN, batch {BATCH}, adam: median of {args.repeats} blocks x {args.steps} steps")
    for name, timing in timings.items():
        print_timing(name, timing)
    if "pytorch" not in timings:
        print("  pytorch    not installed; only TinyTorch was measured")
    else:
        print(f"  ratio      {timings['tinytorch'].median / timings['pytorch'].median:.2f}x (tinytorch / pytorch)")
    rows = [timing_row("training step", name, t) | {"threads": args.threads} for name, t in timings.items()]
    images = rng.standard_normal((8 if args.quick else BATCH, 16, 16, 16)).astype(np.float32)
    for pair, title in ((False, "Conv(16 -> F)"), (True, "Conv(16 -> F), ReLU, Conv(F -> 16)")):
        rows += conv_rows(args, images, pair, title)
    print(f"threads: {args.threads} (BLAS and PyTorch)")
    return rows


if __name__ == "__main__":
    main()
