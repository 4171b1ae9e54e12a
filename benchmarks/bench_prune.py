"""Pruning 4 x Linear(2048, 2048) (16.8M weights) three ways: TinyTorch vs torch.nn.utils.prune, time and memory.

Each pruner runs in a fresh process, so the memory it reports is its own: extra memory
= peak resident memory while pruning (the peak is reset just before, Linux's
clear_refs) - resident memory with the weights already in place, for one pruning. Times
come from Module 14's `time_rounds`: each timed pruning starts from fresh random weights,
refilled by its `setup` off the clock (PyTorch's pending masks made permanent first with
`prune.remove`, as a user does before saving); the median and the spread of the rounds
are reported. The child process prints its figures as JSON, which `main` reads.

    python benchmarks/bench_prune.py [--repeats 3] [--sparsity 0.9] [--method global] [--width 2048] [--quick]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

LAYERS, WIDTH = 4, 2048


def _status_bytes(key: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset) of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> bool:
    # NOTE: the peak must start from the weights alone, not from the moment the layers
    # were initialised (float64 temporaries): Linux resets it with clear_refs 5.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_peak_bytes() -> int:
    if _reset_peak.available:
        return _status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


_reset_peak.available = _reset_peak()


def _pruner(kind: str, method: str, sparsity: float, width: int):
    """(arrays: the weight arrays to refill, prune: one pruning, undo: make a pending pruning permanent)."""
    if kind == "tinytorch":
        from tinytorch.compression import magnitude_prune, structured_prune
        from tinytorch.core.layers import Linear, Sequential

        model = Sequential(*[Linear(width, width) for _ in range(LAYERS)])
        calls = {"global": lambda: magnitude_prune(model, sparsity),
                 "layer": lambda: magnitude_prune(model, sparsity, scope="layer"),
                 "structured": lambda: structured_prune(model, sparsity)}
        return lambda: [layer.weight.data for layer in model], calls[method], lambda: None
    import torch
    from torch.nn.utils import prune

    torch.set_num_threads(2)
    layers = [torch.nn.Linear(width, width) for _ in range(LAYERS)]
    calls = {"global": lambda: prune.global_unstructured([(m, "weight") for m in layers],
                                                         pruning_method=prune.L1Unstructured, amount=sparsity),
             "layer": lambda: [prune.l1_unstructured(m, "weight", amount=sparsity) for m in layers],
             "structured": lambda: [prune.ln_structured(m, "weight", amount=sparsity, n=1, dim=0) for m in layers]}

    def undo():  # make the pruning permanent (what a user does before saving): plain weights again
        for m in layers:
            if prune.is_pruned(m):
                prune.remove(m, "weight")

    return lambda: [m.weight.data.numpy() for m in layers], calls[method], undo


def child(kind: str, sparsity: float, repeats: int, method: str, width: int = WIDTH) -> dict:
    """Extra peak memory of one pruning, then its time over `repeats` rounds, each on fresh weights."""
    import numpy as np

    from tinytorch.profiling import time_rounds

    rng = np.random.default_rng(0)
    arrays, prune_once, undo = _pruner(kind, method, sparsity, width)

    def fresh_weights() -> None:
        undo()
        # NOTE: filled in place, so no second copy of the weights raises the memory baseline.
        for a in arrays():
            rng.standard_normal(a.shape, dtype=np.float32, out=a)

    fresh_weights()
    baseline = _status_bytes("VmRSS") if _reset_peak.available else _rss_peak_bytes()
    _reset_peak()
    prune_once()
    extra = _rss_peak_bytes() - baseline
    (timing,) = time_rounds([lambda _: prune_once()], repeats=repeats, warmup=0, number=1, setup=fresh_weights)
    return {"seconds": timing.median, "spread": timing.spread, "extra_bytes": max(0, extra),
            "weight_bytes": LAYERS * width * width * 4}


def measure(kind: str, sparsity: float, repeats: int, method: str, width: int) -> dict | None:
    """`child` in a fresh process (its memory is its own), read from the JSON it prints; None without torch."""
    # NOTE: `-m` from the project root: the child imports the same tinytorch as this process
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_prune", "--child", kind, "--sparsity", str(sparsity),
                           "--repeats", str(repeats), "--method", method, "--width", str(width)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        if "No module named 'torch'" in proc.stderr:
            return None
        raise RuntimeError(f"the {kind} {method} pruner exited {proc.returncode}:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row(method: str, sparsity: float, width: int, ours: dict, theirs: dict | None) -> dict:
    """One method's figures: median seconds, spread of the rounds, extra memory in units of the weights."""
    return {"method": method, "weights": LAYERS * width * width, "sparsity": sparsity,
            "tinytorch_s": ours["seconds"], "tinytorch_spread": ours["spread"],
            "tinytorch_extra_x": ours["extra_bytes"] / ours["weight_bytes"],
            "torch_s": theirs and theirs["seconds"], "torch_spread": theirs and theirs["spread"],
            "torch_extra_x": theirs and theirs["extra_bytes"] / theirs["weight_bytes"],
            "speedup": theirs and theirs["seconds"] / ours["seconds"]}


def print_row(r: dict) -> None:
    torch_part = ("torch not installed" if r["torch_s"] is None else
                  f"torch {r['torch_s']:.3f} s ({r['torch_spread']:.0%}), extra {r['torch_extra_x']:.2f}x weights | "
                  f"TinyTorch is {r['speedup']:.1f}x faster")
    print(f"{r['method']:<10} {r['weights'] / 1e6:.1f}M weights, sparsity {r['sparsity']}: TinyTorch "
          f"{r['tinytorch_s']:.3f} s ({r['tinytorch_spread']:.0%}), extra {r['tinytorch_extra_x']:.2f}x weights | "
          f"{torch_part}", flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    """Prune with each method in both frameworks, print a line per method, return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per pruner (default 3)")
    parser.add_argument("--method", choices=["global", "layer", "structured"], default=None)
    parser.add_argument("--width", type=int, default=None, help=f"in = out features of each layer (default {WIDTH})")
    parser.add_argument("--quick", action="store_true", help="4 x Linear(512, 512) and one round: a check that it runs")
    parser.add_argument("--child", choices=["tinytorch", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    width = args.width or (512 if args.quick else WIDTH)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.child:
        print(json.dumps(child(args.child, args.sparsity, repeats, args.method or "global", width)))
        return []
    rows = []
    for method in ([args.method] if args.method else ["global", "layer", "structured"]):
        ours = measure("tinytorch", args.sparsity, repeats, method, width)
        rows.append(row(method, args.sparsity, width, ours, measure("torch", args.sparsity, repeats, method, width)))
        print_row(rows[-1])
    return rows


if __name__ == "__main__":
    main()
