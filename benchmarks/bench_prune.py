"""Global magnitude pruning of 4 x Linear(2048, 2048) (16.8M weights): TinyTorch vs torch.nn.utils.prune.

Each pruner runs in a fresh process, so the memory it reports is its own: extra memory
= peak resident memory while pruning (the peak is reset just before, Linux's
clear_refs) - resident memory with the weights already in place. Times are the median
of several runs in the same process.

    python benchmarks/bench_prune.py [--repeats 5] [--sparsity 0.9]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

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


def child(kind: str, sparsity: float, repeats: int, method: str) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    if kind == "tinytorch":
        from tinytorch.compression import magnitude_prune, structured_prune
        from tinytorch.core.layers import Linear, Sequential

        model = Sequential(*[Linear(WIDTH, WIDTH) for _ in range(LAYERS)])
        arrays = [layer.weight.data for layer in model]

        def prune_once():
            if method == "global":
                magnitude_prune(model, sparsity)
            elif method == "layer":
                magnitude_prune(model, sparsity, scope="layer")
            else:
                structured_prune(model, sparsity)

        def finish():
            pass
    else:
        import torch
        from torch.nn.utils import prune

        torch.set_num_threads(2)
        layers = [torch.nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS)]

        def prune_once():
            if method == "global":
                prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured,
                                          amount=sparsity)
            elif method == "layer":
                for m in layers:
                    prune.l1_unstructured(m, "weight", amount=sparsity)
            else:
                for m in layers:
                    prune.ln_structured(m, "weight", amount=sparsity, n=1, dim=0)

        def finish():  # make the pruning permanent (what a user does before saving)
            for m in layers:
                prune.remove(m, "weight")

        arrays = None

    def fresh_weights():
        # NOTE: filled in place, so no second copy of the weights raises the memory baseline.
        targets = arrays if arrays is not None else [m.weight.data.numpy() for m in layers]
        for a in targets:
            rng.standard_normal(a.shape, dtype=np.float32, out=a)

    weight_bytes = LAYERS * WIDTH * WIDTH * 4
    fresh_weights()
    times, extra = [], 0
    for _ in range(repeats):
        baseline = _status_bytes("VmRSS") if _reset_peak.available else _rss_peak_bytes()
        _reset_peak()
        start = time.perf_counter()
        prune_once()
        times.append(time.perf_counter() - start)
        extra = max(extra, _rss_peak_bytes() - baseline)
        finish()
        fresh_weights()
    return {"seconds": statistics.median(times), "extra_bytes": max(0, extra), "weight_bytes": weight_bytes}


def measure(kind: str, sparsity: float, repeats: int, method: str) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--sparsity", str(sparsity),
                           "--repeats", str(repeats), "--method", method], capture_output=True, text=True)
    if proc.returncode != 0:
        if "No module named 'torch'" in proc.stderr:
            return None
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", choices=["global", "layer", "structured"], default=None)
    parser.add_argument("--child", choices=["tinytorch", "torch"])
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.sparsity, args.repeats, args.method or "global")))
        return []
    rows = []
    for method in ([args.method] if args.method else ["global", "layer", "structured"]):
        ours = measure("tinytorch", args.sparsity, args.repeats, method)
        theirs = measure("torch", args.sparsity, args.repeats, method)
        row = {"method": method, "tinytorch_s": ours["seconds"], "tinytorch_extra_x": ours["extra_bytes"] / ours["weight_bytes"],
               "torch_s": theirs and theirs["seconds"], "torch_extra_x": theirs and theirs["extra_bytes"] / theirs["weight_bytes"]}
        row["speedup"] = theirs and theirs["seconds"] / ours["seconds"]
        rows.append(row)
        torch_part = ("torch not installed" if theirs is None else
                      f"torch {theirs['seconds']:.3f} s, extra {row['torch_extra_x']:.2f}x weights | "
                      f"TinyTorch is {row['speedup']:.1f}x faster")
        print(f"{method:<10} 16.8M weights, sparsity {args.sparsity}: TinyTorch {ours['seconds']:.3f} s, "
              f"extra {row['tinytorch_extra_x']:.2f}x weights | {torch_part}", flush=True)
    return rows


if __name__ == "__main__":
    main()
