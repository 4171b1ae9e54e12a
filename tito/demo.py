"""`tito demo compression`: what pruning and INT8 do to a real network, in one run.

Two small networks learn the bundled digits: the MLP 64-128-64-10 and a CNN
(Conv 1->16, Conv 16->32, Linear 128->10). The MLP is pruned iteratively to 90%
sparsity with fine-tuning after every step, then quantized to INT8; last, its weights
share 4 values per layer (k-means, centroids fine-tuned, codes and positions
entropy-coded). The CNN loses half of its hidden filters and units (structured pruning,
again iterative), which are then physically removed, and is quantized too. Every stage is written to disk with
`save_compressed`, timed on the 360 test images, and reported in one table; a plot
compares one-shot pruning (no fine-tuning) with iterative pruning, and a JSON file holds
every figure. `run_demo` does the work; the command only parses its arguments.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tito.project import TitoError, write_atomic

DEFAULT_OUT = "compression-demo"
RESULTS_FILE = "results.json"
PLOT_FILE = "accuracy_vs_sparsity.png"
MLP_SPARSITY = 0.9  # fraction of the MLP's weights pruned
CNN_UNITS = 0.5  # fraction of the CNN's hidden filters/units removed
MODEL_FILES = ("mlp_dense.ttz", "mlp_pruned.ttz", "mlp_int8.ttz", "mlp_shared.ttz",
               "cnn_dense.ttz", "cnn_pruned.ttz", "cnn_removed.ttz", "cnn_int8.ttz")
DEMO_FILES = frozenset({RESULTS_FILE, PLOT_FILE, *MODEL_FILES})


@dataclass(frozen=True)
class Recipe:
    """Epochs and steps of one demo run."""

    mlp_epochs: int = 25
    mlp_steps: int = 5
    mlp_epochs_per_step: int = 5
    mlp_final_epochs: int = 10
    cnn_epochs: int = 30
    cnn_steps: int = 4
    cnn_epochs_per_step: int = 2
    cnn_final_epochs: int = 10
    latency_rounds: int = 7  # interleaved rounds over every stage of a network
    latency_repeats: int = 5  # timed calls per stage and round


FULL = Recipe()
QUICK = Recipe(mlp_epochs=3, mlp_steps=2, mlp_epochs_per_step=1, mlp_final_epochs=1,
               cnn_epochs=2, cnn_steps=2, cnn_epochs_per_step=1, cnn_final_epochs=1,
               latency_rounds=5, latency_repeats=3)


# ----------------------------------------------------------------------------- the output folder


def prepare_out(out: str | os.PathLike, force: bool = False) -> Path:
    """Create `out`, or accept it when it is empty or holds only an earlier run of this demo.

    Raises:
        TitoError: `out` is a file, or a folder with other files in it and `force` is False
            (with `force`, the demo writes its own files there and touches nothing else).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TitoError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        try:
            names = sorted(p.name for p in out.iterdir())
        except OSError as err:
            raise TitoError(f"--out {out} cannot be read: {err.strerror or err}") from None
        foreign = [n for n in names if n not in DEMO_FILES]
        if names and not foreign and not _is_demo_results(out / RESULTS_FILE):
            foreign = [n for n in names if n == RESULTS_FILE] or names
        if foreign and not force:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise TitoError(f"--out {out} already holds files this demo did not write ({shown}); "
                            f"name a new folder, or pass --force to write the demo's files there "
                            f"({', '.join(sorted(DEMO_FILES))}) and leave the others alone")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TitoError(f"--out {out} cannot be created: {err.strerror or err}") from None
    return out


def _is_demo_results(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("demo") == "compression"
    except (OSError, ValueError, AttributeError):
        return False


# ----------------------------------------------------------------------------- measuring


def _one_blas_thread():
    """NumPy's BLAS on one thread (Module 14's `blas_threads`; the CLI also sets it by env)."""
    # NOTE: these matrices are tiny; a multi-threaded BLAS on a busy machine spends far
    # longer waiting for its threads than computing (measured: 30x slower epochs).
    from tinytorch.profiling import blas_threads

    return blas_threads(1)


def _nonzero_and_total(model) -> tuple[int, int]:
    """(non-zero, all) parameter values of a float or quantized model, biases included."""
    import numpy as np

    from tinytorch.quantization import QuantizedLayer

    shared = [m for m in model.modules() if hasattr(m, "centroids")]  # count their weights, not centroids
    arrays = [p.data for p in model.parameters() if not any(p is m.centroids for m in shared)]
    arrays += [m.weight.data for m in shared]
    for layer in model.modules():
        if isinstance(layer, QuantizedLayer):
            arrays += [layer.qweight.values] + ([] if layer.bias is None else [np.asarray(layer.bias)])
    return sum(int(np.count_nonzero(a)) for a in arrays), sum(int(a.size) for a in arrays)


def _latencies(models: dict, x, rounds: int, repeats: int) -> dict:
    """Each model's `Timing` on `x` (Module 14's `time_rounds`): `rounds` interleaved rounds of
    `repeats` calls, one BLAS thread, in eval mode without a graph.

    Interleaving makes a slow moment of a shared machine hit every stage alike, so the
    ratios between stages hold on a busy machine too; the spread says how far they can.
    """
    from tinytorch.core.autograd import no_grad
    from tinytorch.profiling import time_rounds

    for model in models.values():
        model.eval()
    with no_grad():
        timings = time_rounds([lambda m=m: m(x) for m in models.values()], repeats=rounds, warmup=1,
                              number=repeats, clock="cpu")
    return dict(zip(models, timings))


# ----------------------------------------------------------------------------- the two networks


class _Run:
    """State shared by the two parts of one demo run: data, console, folder, recipe."""

    def __init__(self, out: Path, recipe: Recipe, seed: int, console):
        self.out, self.recipe, self.seed, self.console = out, recipe, seed, console
        self.stages: list[dict] = []
        self.curves: dict[str, dict] = {}

    def loaders(self, flat: bool):
        """Module 09's digits loaders (batches shuffled with the run's seed) and the test images as a Tensor."""
        from tinytorch.core.tensor import Tensor
        from tinytorch.recipes import digits_loaders

        train, test = digits_loaders(self.seed, flat=flat)
        return train, test, Tensor(test.dataset.arrays[0])

    def train(self, name: str, model, train, test, epochs: int) -> float:
        """Module 09's recipe (Adam, lr 3e-3, batches of 64) for `epochs`; prints and returns the test accuracy."""
        from tinytorch.recipes import DigitsRecipe

        start = time.perf_counter()
        accuracy = DigitsRecipe(epochs=epochs, lr=3e-3, seed=self.seed).fit(model, train, test, progress=None).accuracy
        self.console.print(f"{name}: trained {epochs} epochs in {time.perf_counter() - start:.1f} s, "
                           f"test accuracy {accuracy:.1%}")
        return accuracy

    def prune_iteratively(self, name: str, model, train, test, target: float, method: str,
                          steps: int, epochs_per_step: int, final_epochs: int, lr: float):
        """IterativePruner with a printed line per step, then `final_epochs` of fine-tuning."""
        from tinytorch.compression import IterativePruner, fine_tune, measure_sparsity, sparsity_schedule
        from tinytorch.core.losses import CrossEntropyLoss
        from tinytorch.core.optimizers import Adam
        from tinytorch.core.training import evaluate

        what = "of weights zeroed" if method == "magnitude" else "of hidden units removed"
        count = iter(range(1, steps + 1))

        def evaluate_and_report(m) -> float:
            step, accuracy = next(count), evaluate(m, test)
            done = measure_sparsity(m) if method == "magnitude" else sparsity_schedule(step, steps, target)
            self.console.print(f"  step {step}/{steps}: {done:.1%} {what}, fine-tuned, test accuracy {accuracy:.1%}")
            return accuracy

        done = "of weights pruned" if method == "magnitude" else "of hidden units removed"
        self.console.print(f"{name}: {target:.0%} {done} in {steps} steps, {epochs_per_step} fine-tuning epochs each")
        optimizer, loss_fn = Adam(model.parameters(), lr=lr), CrossEntropyLoss()
        pruner = IterativePruner(target, steps=steps, method=method)
        history = pruner.run(model, optimizer, loss_fn, train, epochs_per_step, evaluate=evaluate_and_report)
        fine_tune(model, optimizer, loss_fn, train, final_epochs, masks=pruner.masks)
        accuracy = evaluate(model, test)
        self.console.print(f"  then {final_epochs} more epochs with the masks held: test accuracy {accuracy:.1%}")
        return pruner, history, accuracy

    def stage(self, net: str, key: str, label: str, model, test, note: str = "") -> tuple[dict, object]:
        """Save `model` to `<net>_<key>.ttz`, read it back, and record what the file holds."""
        from tinytorch.compression import load_compressed, save_compressed
        from tinytorch.core.training import evaluate

        path = self.out / f"{net}_{key}.ttz"
        size = save_compressed(model, path)
        loaded = load_compressed(path)  # accuracy and latency of what is really on disk
        nonzero, total = _nonzero_and_total(loaded)
        row = {"model": net, "key": key, "stage": label, "accuracy": float(evaluate(loaded, test)),
               "params": total, "nonzero": nonzero, "file": path.name, "bytes": int(size), "note": note}
        self.stages.append(row)
        return row, loaded

    def record(self, net: str, stages: list[tuple], test, x) -> None:
        """Save, reload and measure each `(key, label, model)` stage; ratios against the first one.

        Latencies are timed together, in interleaved rounds, on the models read back from disk.
        """
        rows, models = [], []
        for key, label, model in stages:
            row, loaded = self.stage(net, key, label, model, test)
            rows.append(row)
            models.append(loaded)
        from tinytorch.profiling import compare_timings

        times = _latencies({r["key"]: m for r, m in zip(rows, models)}, x,
                           self.recipe.latency_rounds, self.recipe.latency_repeats)
        first = times[rows[0]["key"]]
        for row in rows:
            row["ratio"] = rows[0]["bytes"] / row["bytes"]
            row["latency_ms"] = times[row["key"]].median * 1e3
            row["speedup"] = first.median / times[row["key"]].median
            flags = compare_timings(first, times[row["key"]]).flags
            self.console.print(f"latency of {net.upper()} {row['stage']}: {times[row['key']]}"
                               + "".join(f"  [yellow][!] {flag}[/]" for flag in flags))


def _one_shot(model, prune, amounts, test) -> list[list[float]]:
    """[amount, test accuracy] of copies of `model` pruned by `prune(copy, amount)`, without fine-tuning."""
    from tinytorch.core.training import evaluate

    points = []
    for amount in amounts:
        trial = copy.deepcopy(model)
        prune(trial, amount)
        points.append([amount, float(evaluate(trial, test))])
    return points


def _run_mlp(run: _Run) -> None:
    from tinytorch.compression import fine_tune, magnitude_prune, prune_and_quantize
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import evaluate
    from tinytorch.recipes import digits_mlp

    r = run.recipe
    train, test, x = run.loaders(flat=True)
    model = digits_mlp(seed=run.seed)
    dense_accuracy = run.train("MLP 64-128-64-10", model, train, test, r.mlp_epochs)
    dense = copy.deepcopy(model)

    one_shot = _one_shot(dense, magnitude_prune, (0.5, 0.7, 0.8, 0.85, 0.9, 0.95), test)

    pruner, history, _ = run.prune_iteratively(
        "MLP", model, train, test, MLP_SPARSITY, "magnitude", r.mlp_steps, r.mlp_epochs_per_step,
        r.mlp_final_epochs, lr=5e-3)
    budget = r.mlp_steps * r.mlp_epochs_per_step + r.mlp_final_epochs
    # The fair comparison: one-shot pruning followed by as many fine-tuning epochs.
    trial = copy.deepcopy(dense)
    masks = magnitude_prune(trial, MLP_SPARSITY)
    fine_tune(trial, Adam(trial.parameters(), lr=5e-3), CrossEntropyLoss(), train, budget, masks=masks,
              progress=False)
    run.curves["mlp"] = {
        "x": "sparsity", "dense": float(dense_accuracy), "one_shot": one_shot,
        "iterative": [[0.0, float(dense_accuracy)]] + [[row["sparsity"], row["accuracy"]] for row in history],
        "iterative_final": [pruner.masks.sparsity, float(evaluate(model, test))],
        "one_shot_fine_tuned": [MLP_SPARSITY, float(evaluate(trial, test))], "fine_tune_epochs": budget,
    }
    run.console.print(f"  for comparison, one-shot to {MLP_SPARSITY:.0%} + {budget} fine-tuning epochs: "
                      f"test accuracy {run.curves['mlp']['one_shot_fine_tuned'][1]:.1%}")
    run.record("mlp", [("dense", "dense fp32", dense), ("pruned", f"{MLP_SPARSITY:.0%} pruned", model),
                       ("int8", f"{MLP_SPARSITY:.0%} pruned + INT8",
                        prune_and_quantize(model, sparsity=None, per_channel=False, int8_bias=True)),
                       _shared_stage(run, model, train)], test, x)


def _run_cnn(run: _Run) -> None:
    from tinytorch.compression import prune_and_quantize, remove_pruned_units, structured_prune
    from tinytorch.recipes import digits_cnn

    r = run.recipe
    train, test, x = run.loaders(flat=False)
    model = digits_cnn((16, 32), seed=run.seed)
    dense_accuracy = run.train("CNN 16-32 filters", model, train, test, r.cnn_epochs)
    dense = copy.deepcopy(model)
    one_shot = _one_shot(dense, structured_prune, (0.25, 0.5, 0.75), test)

    pruner, history, accuracy = run.prune_iteratively(
        "CNN", model, train, test, CNN_UNITS, "structured", r.cnn_steps, r.cnn_epochs_per_step,
        r.cnn_final_epochs, lr=3e-3)
    run.curves["cnn"] = {
        "x": "units removed", "dense": float(dense_accuracy), "one_shot": one_shot,
        "iterative": [[0.0, float(dense_accuracy)]] + [[row["target"], row["accuracy"]] for row in history],
        "iterative_final": [CNN_UNITS, float(accuracy)],
    }
    stages = [("dense", "dense fp32", dense), ("pruned", f"{CNN_UNITS:.0%} units zeroed", model)]
    small = remove_pruned_units(model, pruner.masks)
    stages.append(("removed", "units removed", small))
    stages.append(("int8", "removed + INT8", prune_and_quantize(small, sparsity=None, per_channel=False,
                                                                int8_bias=True)))
    run.record("cnn", stages, test, x)


# ----------------------------------------------------------------------------- reporting


def results_table(stages: list[dict]):
    """The demo's stages as a rich Table (fits 80 columns)."""
    from rich import box
    from rich.table import Table

    table = Table(title="Compression, stage by stage (digits test set: 360 images)", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for name in ("stage", "accuracy", "non-zero", "bytes", "ratio", "latency", "speedup"):
        table.add_column(name, justify="left" if name == "stage" else "right", no_wrap=True)
    for i, row in enumerate(stages):
        if i and row["model"] != stages[i - 1]["model"]:
            table.add_section()
        table.add_row(f"{row['model'].upper()} {row['stage']}", f"{row['accuracy']:.1%}", f"{row['nonzero']:,}",
                      f"{row['bytes']:,}", f"{row['ratio']:.1f}x", f"{row['latency_ms']:.2f} ms",
                      f"{row['speedup']:.2f}x")
    table.caption = ("non-zero: parameter values that are not zero; bytes: the file save_compressed wrote; "
                     "ratio: dense file / this file; latency: one batch of 360, median of interleaved "
                     "rounds, one BLAS thread; speedup: dense latency / this latency")
    return table


def plot_curves(curves: dict[str, dict], path: Path) -> None:
    """Accuracy against sparsity, one-shot vs iterative, one panel per network, saved as PNG."""
    from matplotlib.figure import Figure

    from tinytorch.core.files import write_figure

    fig = Figure(figsize=(11, 4.2), dpi=110)
    titles = {"mlp": "MLP: magnitude pruning (weights)", "cnn": "CNN: structured pruning (filters, units)"}
    for i, net in enumerate(n for n in ("mlp", "cnn") if n in curves):
        c = curves[net]
        ax = fig.add_subplot(1, 2, i + 1)
        for key, style, label in (("one_shot", "o--", "one-shot, no fine-tuning"),
                                  ("iterative", "s-", "iterative, fine-tuned each step")):
            points = [[0.0, c["dense"]]] + c[key] if key == "one_shot" else c[key]
            ax.plot([100 * s for s, _ in points], [100 * a for _, a in points], style, label=label)
        s, a = c["iterative_final"]
        ax.plot([100 * s], [100 * a], "*", markersize=14, label="iterative + final fine-tuning")
        if "one_shot_fine_tuned" in c:
            s, a = c["one_shot_fine_tuned"]
            ax.plot([100 * s], [100 * a], "D", markersize=6, zorder=1,
                    label=f"one-shot + {c['fine_tune_epochs']} epochs fine-tuning")
        ax.axhline(100 * c["dense"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(titles[net])
        ax.set_xlabel("weights pruned (%)" if c["x"] == "sparsity" else "hidden units removed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    write_figure(fig, path, dpi=110)


def _environment() -> dict:
    import numpy as np

    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count()}


def run_demo(out: str | os.PathLike = DEFAULT_OUT, quick: bool = False, seed: int = 0, force: bool = False,
             console=None) -> dict:
    """Train, prune, remove, quantize and measure the digits MLP and CNN; write the results to `out`.

    Args:
        out: the output folder (created; see `prepare_out` for when it is refused).
        quick: a few epochs only (seconds instead of about a minute); for tests.
        seed: seeds the weights and the data order.
        force: write into an `out` that holds other files (only the demo's files are written).
        console: a rich Console to print to (default: the terminal's).

    Returns:
        What `results.json` holds: `stages` (one row per model and stage: accuracy,
        nonzero, params, bytes, ratio, latency_ms, speedup), `curves`, `files`, ...

    Raises:
        TitoError: `out` cannot be used (see `prepare_out`), or `seed` is not in [0, 2**32).
    """
    from rich import get_console

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise TitoError(f"--seed must be an integer in [0, 2**32), got {seed!r}")
    out = prepare_out(out, force)
    console = console or get_console()
    recipe = QUICK if quick else FULL
    run = _Run(out, recipe, seed, console)
    start = time.perf_counter()
    with _one_blas_thread():
        _run_mlp(run)
        _run_cnn(run)
    console.print(results_table(run.stages))
    plot_curves(run.curves, out / PLOT_FILE)
    results = {
        "demo": "compression", "quick": quick, "seed": seed, "recipe": asdict(recipe),
        "date": dt.datetime.now().isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - start, 1),
        "environment": _environment(),
        "latency": "per batch of the 360 test images: median of interleaved rounds, one BLAS thread",
        "stages": run.stages, "curves": run.curves,
        "files": {"results": RESULTS_FILE, "plot": PLOT_FILE, "models": [r["file"] for r in run.stages]},
    }
    # NOTE: atomic: a half-written results.json would make the next run refuse this folder.
    write_atomic(out / RESULTS_FILE, (json.dumps(results, indent=2) + "\n").encode("utf-8"))
    console.print(f"done in {results['seconds']:.0f} s; wrote:")
    for path, what in ((out / PLOT_FILE, "accuracy vs sparsity, one-shot vs iterative"),
                       (out / RESULTS_FILE, "every figure of this run"),
                       (out / "*.ttz", f"the {len(run.stages)} model files, one per stage")):
        console.print(f"  {path}  ({what})", soft_wrap=True)
    return results


# ----------------------------------------------------------------------------- the command


def _cmd_demo(args) -> int:
    # NOTE: BLAS reads its thread count when NumPy is first imported, which the CLI has
    # not done yet: one thread, as the matrices are too small to gain from more.
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    run_demo(args.out, quick=args.quick, seed=args.seed, force=args.force)
    return 0


def register(subparsers) -> None:
    """Add `tito demo compression` to the `tito` command."""
    p = subparsers.add_parser("demo", help="run a demonstration (compression: prune + INT8 on the digits)")
    sub = p.add_subparsers(dest="demo", required=True)
    q = sub.add_parser("compression", help="train, prune, quantize and measure two digits networks",
                       description=__doc__.splitlines()[0])
    q.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    q.add_argument("--quick", action="store_true", help="a few epochs only: runs in seconds")
    q.add_argument("--seed", type=int, default=0, help="seed of the weights and data order (default 0)")
    q.add_argument("--force", action="store_true", help="write into --out even if it holds other files")
    q.set_defaults(func=_cmd_demo)


# ----------------------------------------------------------------------------- weight sharing

SHARED_BITS = 2  # centroids per layer: 2**SHARED_BITS


def _shared_stage(run: _Run, model, train) -> tuple:
    """The pruned MLP with `2**SHARED_BITS` shared values per layer (k-means), centroids fine-tuned,
    stored entropy-coded: Deep Compression's last two steps after INT8."""
    from tinytorch.compression import fine_tune_centroids, prune_and_quantize
    from tinytorch.core.losses import CrossEntropyLoss

    shared = prune_and_quantize(model, sparsity=None, bits=SHARED_BITS, codebook="kmeans", int8_bias=True)
    epochs = run.recipe.mlp_final_epochs
    fine_tune_centroids(shared, CrossEntropyLoss(), train, epochs, lr=1e-3, progress=False)
    run.console.print(f"MLP: {2 ** SHARED_BITS} shared values per layer (k-means), centroids fine-tuned {epochs} epochs")
    return ("shared", f"{MLP_SPARSITY:.0%} + {SHARED_BITS}-bit shared", shared)
