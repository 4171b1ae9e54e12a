"""Structured pruning and speed: the masked model vs the physically smaller one, beside the FLOP ratio.

Three networks with random weights (accuracy is not the point here):

* the MLP 512-2048-2048-10 at batch 256;
* the digits CNN, Conv(1->8, 3x3, pad 1), ReLU, MaxPool 2, Conv(8->16, 3x3, pad 1), ReLU,
  MaxPool 2, Flatten, Linear(64, 10), on 8x8 images at batch 256;
* a CNN of CIFAR's shape, the same layers with Conv(3->32) and Conv(32->64) on 3x32x32
  images at batch 64: wider layers, to show how the answer changes with width.

At each ratio, `structured_prune` zeros that fraction of every hidden layer's units
(the masked model: same shapes, zeros inside) and `remove_pruned_units` builds the
smaller model. Both run forward in eval mode; their outputs are checked to agree,
and they are timed in interleaved rounds (Module 14's `time_rounds`), so the speedup and the
FLOP ratio (Module 14's `count_flops`, masked / smaller) come from the same run. Where
PyTorch is installed, the same weights run in `torch.nn` three times: the masked
model plain, after `torch.nn.utils.prune.ln_structured` (what PyTorch's pruning gives
you: a mask multiplied in on every call, the same shapes, no speedup), and the smaller
model, so PyTorch's own speedup from removing the same units stands beside ours. The
PyTorch models are timed in interleaved rounds of their own, after ours: mixed into
the same rounds, their calls made our CNN ratios swing by a third from run to run.

Where Torch-Pruning is installed, it removes the same units from the PyTorch twin of
the masked model (its dependency graph, then `prune_*_out_channels` per layer): its
outputs are checked against our smaller model's, and the time it takes stands beside
that of `remove_pruned_units` (medians of 5 runs in turns, each of Torch-Pruning's on a fresh
copy built off the clock).

For each CNN at ratio 0.5, `compare_layer_times` then times the two models layer by
layer: each layer's speedup next to its FLOP ratio says where the time went.

Everything runs on one thread, and by default the clock is the CPU time of this
process (`--clock cpu`): on one thread that is the latency an idle machine shows,
while elapsed time (`--clock wall`) on a shared machine also counts the time other
programs hold the CPU, which swamps the CNN's sub-millisecond calls.

    python benchmarks/bench_structured.py [--repeats 11] [--ratios 0.25 0.5 0.75] [--threads 1] [--clock cpu|wall]
        [--quick]

Goal: at ratio 0.5, a measured speedup of at least 0.8x the FLOP ratio.

FLOPs count multiply-adds (and pooling's comparisons). The MLP's time is its matmuls, so its
speedup follows them. A small CNN's is not: im2col copies, ReLU and pooling move
memory in proportion to one channel count, so halving the channels halves their time
while it quarters the matmul's; the first convolution copies its input whole however
many filters remain; and every layer call has a fixed cost. The layer table shows each.
"""
from __future__ import annotations

import argparse
import copy
import os
import warnings

# NOTE: BLAS reads its thread count when NumPy is first imported; one thread keeps a
# shared machine's load out of the figures (see benchmarks/run_all.py).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

RATIOS = (0.25, 0.5, 0.75)
BATCH = 256
GOAL_RATIO, GOAL_FRACTION = 0.5, 0.8


def mlp(width: int = 2048):
    """The MLP 512-width-width-10 (Module 09's builder, weights drawn where the generator stands)."""
    from tinytorch.recipes import digits_mlp

    return digits_mlp((512, width, width, 10), seed=None)


def digits_cnn():
    """The digits CNN (8 and 16 filters) of Module 09's `tinytorch.recipes`."""
    from tinytorch.recipes import digits_cnn as build

    return build(seed=None)


def cifar_cnn(c1: int = 32, c2: int = 64, side: int = 32):
    """The digits CNN's layers, wider, on 3-channel `side` x `side` images."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    return Sequential(Conv2d(3, c1, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(c1, c2, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(c2 * (side // 4) ** 2, 10))


def to_torch(model, torch):
    """A torch.nn.Sequential with the same layers and weights as a TinyTorch Sequential."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    nn, layers = torch.nn, []
    for layer in model:
        if isinstance(layer, Linear):
            t = nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, Conv2d):
            t = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, ReLU):
            layers.append(nn.ReLU())
            continue
        elif isinstance(layer, MaxPool2d):
            layers.append(nn.MaxPool2d(layer.kernel_size, layer.stride))
            continue
        elif isinstance(layer, Flatten):
            layers.append(nn.Flatten())
            continue
        else:
            raise TypeError(f"no torch twin for {type(layer).__name__}")
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(layer.weight.data))
            t.bias.copy_(torch.from_numpy(layer.bias.data))
        layers.append(t)
    return nn.Sequential(*layers).eval()


def torch_pruning_removal(model, torch, tp, input_shape: tuple[int, ...]):
    """Torch-Pruning removes, in place, the zeroed units of `model` (a PyTorch twin of a masked model).

    A unit goes when its weights and its bias are all zero, as in `remove_pruned_units`;
    the last layer (the classes) keeps all of its outputs.
    """
    import numpy as np

    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(input_shape))
    for layer in [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][:-1]:
        rows = layer.weight.detach().numpy().reshape(layer.weight.shape[0], -1)
        gone = np.flatnonzero(~rows.any(axis=1) & (layer.bias.detach().numpy() == 0)).tolist()
        if gone:
            prune = tp.prune_conv_out_channels if isinstance(layer, torch.nn.Conv2d) else tp.prune_linear_out_channels
            graph.get_pruning_group(layer, prune, idxs=gone).prune()
    return model


def removal_times(masked, masks, torch, tp, input_shape, runs: int = 5) -> dict:
    """Median seconds of `remove_pruned_units` and of Torch-Pruning for the same units, and Torch-Pruning's model.

    The two take turns in Module 14's `time_rounds`; Torch-Pruning works in place, so
    each of its runs gets a fresh PyTorch twin of `masked`, built by the setup off the clock.
    """
    from tinytorch.compression.surgery import remove_pruned_units
    from tinytorch.profiling import time_rounds

    fns, setups = [lambda: remove_pruned_units(masked, masks)], [None]
    if tp is not None:
        fns.append(lambda twin: torch_pruning_removal(twin, torch, tp, input_shape))
        setups.append(lambda: to_torch(masked, torch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning's notes on layers it does not know
        timings = time_rounds(fns, repeats=runs, warmup=0, number=1, setup=setups)
        model = None if tp is None else fns[1](setups[1]())
    return {"ours": timings[0].median, "theirs": None if tp is None else timings[1].median, "model": model}


def _torch_fns(masked, smaller, ratio: float, x, torch) -> list:
    """PyTorch's dense, `ln_structured`-pruned and smaller copies of the model, as calls on `x`."""
    from torch.nn.utils import prune

    plain, pruned, removed = to_torch(masked, torch), to_torch(masked, torch), to_torch(smaller, torch)
    hidden = [m for m in pruned if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][:-1]
    for m in hidden:
        prune.ln_structured(m, "weight", amount=ratio, n=1, dim=0)
    tx = torch.from_numpy(x.data)
    return [lambda: plain(tx), lambda: pruned(tx), lambda: removed(tx)]


def forward_timings(masked, smaller, ratio: float, x, torch, repeats: int, clock: str) -> list:
    """Module 14's Timings of the forward passes: masked, smaller, then PyTorch's dense, pruned, smaller."""
    from tinytorch.profiling import time_rounds

    timings = time_rounds([lambda: masked(x), lambda: smaller(x)], repeats=repeats, clock=clock)
    if torch is not None:
        # NOTE: in rounds of their own: PyTorch's calls, interleaved with ours, moved our
        # CNN ratio from a steady 1.9x to anywhere in 1.8-2.7x on the CPU clock.
        with torch.inference_mode():
            timings += time_rounds(_torch_fns(masked, smaller, ratio, x, torch), repeats=repeats, clock=clock,
                                   threads=None)
    return timings


def _layer_rows(layers) -> list[dict] | None:
    """`compare_layer_times`' result as rows (None when the layers were not timed)."""
    return None if layers is None else [
        {"layer": f"{t.name} {t.kind}", "masked_us": 1e6 * t.before_seconds, "removed_us": 1e6 * t.after_seconds,
         "speedup": t.speedup, "flop_ratio": t.flop_ratio, "spread": max(t.before.spread, t.after.spread),
         "flags": list(t.check.flags)} for t in layers]


def make_row(name: str, input_shape, ratio: float, clock: str, masked, smaller, timings, removal: dict,
             diffs: tuple[float, float | None]) -> dict:
    """One row: sizes, FLOP ratio, forward medians and speedup (flagged by `compare_timings`), removal times."""
    from tinytorch.profiling import compare_timings, count_flops, count_parameters

    flop_ratio = count_flops(masked, input_shape) / count_flops(smaller, input_shape)
    ms = [1e3 * t.median for t in timings] + [None] * (5 - len(timings))
    speedup = ms[0] / ms[1]
    check = compare_timings(timings[0], timings[1], work_ratio=flop_ratio)
    return {
        "model": name, "batch": input_shape[0], "ratio": ratio, "clock": clock,
        "params": count_parameters(masked), "params_removed": count_parameters(smaller),
        "flop_ratio": flop_ratio, "masked_ms": ms[0], "removed_ms": ms[1],
        "speedup": speedup, "speedup_over_flop_ratio": speedup / flop_ratio, "max_abs_diff": diffs[0],
        "masked_spread": timings[0].spread, "removed_spread": timings[1].spread, "flags": list(check.flags),
        "torch_dense_ms": ms[2], "torch_pruned_ms": ms[3], "torch_removed_ms": ms[4],
        "removal_ms": 1e3 * removal["ours"],
        "torch_pruning_removal_ms": None if removal["theirs"] is None else 1e3 * removal["theirs"],
        "torch_pruning_max_abs_diff": diffs[1],
    }


def measure(name: str, build, input_shape: tuple[int, ...], ratios, repeats: int, torch,
            clock: str = "cpu", layers_at: float | None = None, tp=None) -> list[dict]:
    """One row per ratio: FLOP ratio, medians of masked and removed forward, speedup, torch columns.

    At ratio `layers_at` the row also holds `layers`: `compare_layer_times` of the two models.
    """
    import numpy as np

    from tinytorch.acceleration import compare_layer_times
    from tinytorch.compression import structured_prune
    from tinytorch.compression.surgery import remove_pruned_units
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(0)
    base = build()
    x = Tensor(np.random.default_rng(0).standard_normal(input_shape).astype(np.float32))
    rows = []
    for ratio in ratios:
        masked = copy.deepcopy(base)
        masks = structured_prune(masked, ratio)
        smaller = remove_pruned_units(masked, masks)
        removal = removal_times(masked, masks, torch, tp, input_shape)
        masked.eval()
        smaller.eval()
        with no_grad():
            out = smaller(x).data
            err = float(np.abs(masked(x).data - out).max())
            if err > 1e-4:
                raise AssertionError(f"{name} at ratio {ratio}: the smaller model differs by {err}")
            timings = forward_timings(masked, smaller, ratio, x, torch, repeats, clock)
            tp_diff = None if removal["model"] is None else float(np.abs(
                removal["model"].eval()(torch.from_numpy(x.data)).detach().numpy() - out).max())
            at_layers = layers_at is not None and abs(ratio - layers_at) < 1e-9
            layers = compare_layer_times(masked, smaller, x, repeats=repeats, clock=clock) if at_layers else None
        rows.append(make_row(name, input_shape, ratio, clock, masked, smaller, timings, removal, (err, tp_diff))
                    | {"layers": _layer_rows(layers)})
    return rows


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _print_flags(flagged) -> None:
    """The flags Module 14's compare_timings raised (a '!' marks their rows): ratios not to build on."""
    for where, flags in flagged:
        for flag in flags:
            print(f"  [!] {where}: {flag}")


def print_table(rows: list[dict]) -> None:
    print("Forward pass, eval mode: masked model (zeros inside) vs units removed (medians of interleaved rounds, "
          "one BLAS thread; spread = the larger range of rounds / median)")
    print(f"{'model':<28} {'batch':>5} {'ratio':>5} {'params':>18} {'FLOP ratio':>10} {'masked ms':>10} "
          f"{'removed ms':>10} {'spread':>6} {'speedup':>8} {'speedup/FLOPs':>13} {'torch dense ms':>14} "
          f"{'torch pruned ms':>15} {'torch removed ms':>16} {'torch speedup':>13}")
    for r in rows:
        t_speedup = "n/a" if r["torch_removed_ms"] is None else f"{r['torch_dense_ms'] / r['torch_removed_ms']:.2f}x"
        params = f"{r['params']:,}->{r['params_removed']:,}"
        print(f"{r['model']:<28} {r['batch']:>5} {r['ratio']:>5.2f} {params:>18} {r['flop_ratio']:>9.2f}x "
              f"{r['masked_ms']:>10.2f} {r['removed_ms']:>10.2f} {max(r['masked_spread'], r['removed_spread']):>6.0%} "
              f"{r['speedup']:>7.2f}x{'!' if r['flags'] else ' '}"
              f"{r['speedup_over_flop_ratio']:>13.2f} {_ms(r['torch_dense_ms']):>14} "
              f"{_ms(r['torch_pruned_ms']):>15} {_ms(r['torch_removed_ms']):>16} {t_speedup:>13}")
    _print_flags((f"{r['model']} at {r['ratio']}", r["flags"]) for r in rows)
    print("\nRemoving the units: remove_pruned_units (a new model; the input is kept) vs Torch-Pruning "
          "(in place), medians of 5 runs in turns")
    print(f"{'model':<28} {'ratio':>5} {'TinyTorch ms':>12} {'Torch-Pruning ms':>16} {'faster by':>9} "
          f"{'max |difference| of outputs':>28}")
    for r in rows:
        theirs = r["torch_pruning_removal_ms"]
        faster = "n/a" if theirs is None else f"{theirs / r['removal_ms']:.1f}x"
        diff = "n/a" if r["torch_pruning_max_abs_diff"] is None else f"{r['torch_pruning_max_abs_diff']:.1e}"
        print(f"{r['model']:<28} {r['ratio']:>5.2f} {r['removal_ms']:>12.2f} {_ms(theirs):>16} {faster:>9} {diff:>28}")
    for r in rows:
        if r["layers"]:
            print(f"\n{r['model']} at ratio {r['ratio']}, layer by layer (compare_layer_times; FLOP ratio "
                  "'-' where a layer counts no FLOPs)")
            print(f"{'layer':<14} {'masked us':>10} {'removed us':>10} {'spread':>6} {'speedup':>8} {'FLOP ratio':>10}")
            for t in r["layers"]:
                flops = "-" if t["flop_ratio"] is None else f"{t['flop_ratio']:.2f}x"
                print(f"{t['layer']:<14} {t['masked_us']:>10.1f} {t['removed_us']:>10.1f} {t['spread']:>6.0%} "
                      f"{t['speedup']:>7.2f}x{'!' if t['flags'] else ' '}{flops:>10}")
            _print_flags((t["layer"], t["flags"]) for t in r["layers"])
            total = [sum(t[k] for t in r["layers"]) for k in ("masked_us", "removed_us")]
            print(f"{'sum of layers':<14} {total[0]:>10.1f} {total[1]:>10.1f} {total[0] / total[1]:>7.2f}x")
    print()
    for r in rows:
        if abs(r["ratio"] - GOAL_RATIO) < 1e-9:
            verdict = "met" if r["speedup_over_flop_ratio"] >= GOAL_FRACTION else "NOT met"
            torch_part = "" if r["torch_removed_ms"] is None else \
                f"; PyTorch on the same smaller model: {r['torch_dense_ms'] / r['torch_removed_ms']:.2f}x"
            print(f"goal ({r['model']}, ratio {GOAL_RATIO}): speedup >= {GOAL_FRACTION} x FLOP ratio: "
                  f"{r['speedup']:.2f}x vs {r['flop_ratio']:.2f}x = {r['speedup_over_flop_ratio']:.2f} "
                  f"({verdict}){torch_part}")


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure the three networks at every ratio, print the tables, return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 512-wide MLP, a narrower CIFAR-shaped CNN and 3 rounds: a check that it runs")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 11)")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS),
                        help=f"fractions of units to remove (default {' '.join(map(str, RATIOS))})")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (NumPy's: OPENBLAS_NUM_THREADS)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: CPU seconds of this process (default with one thread); wall: elapsed time")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the CPU time of all threads: use it with --threads 1")
    repeats = args.repeats or (3 if args.quick else 11)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    try:
        import torch_pruning as tp  # optional: the reference for removing units in PyTorch
    except ImportError:
        tp = None
    width = 512 if args.quick else 2048
    c1, c2, cifar_batch = (8, 16, 16) if args.quick else (32, 64, 64)
    nets = [(f"MLP 512-{width}-{width}-10", lambda: mlp(width), (BATCH, 512)),
            ("digits CNN", digits_cnn, (BATCH, 1, 8, 8)),
            (f"CIFAR-shaped CNN {c1}/{c2}", lambda: cifar_cnn(c1, c2), (cifar_batch, 3, 32, 32))]
    rows = []
    for name, build, shape in nets:
        rows += measure(name, build, shape, args.ratios, repeats, torch, clock,
                        layers_at=None if name.startswith("MLP") else GOAL_RATIO, tp=tp)
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
