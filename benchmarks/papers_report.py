"""The report of `bench_papers`: its lines in the summary of RESULTS.md and its figure."""
from __future__ import annotations

from pathlib import Path


def headline(rows: list[dict]) -> list[list]:
    """The summary lines of RESULTS.md: [measurement, TinyTorch, PyTorch, comparison]."""
    out = []
    for r in (r for r in rows if r["table"].startswith("Deep")):
        out.append([f"Deep Compression, {r['network']} on the MNIST sample: file vs fp32 parameters, accuracy change",
                    f"{r['ratio_fp32']:.0f}x ({r['bytes']:,.0f} B), {-r['drop_points']:+.2f} points "
                    f"({100 * r['dense_accuracy']:.1f}% dense)",
                    None if r.get("ratio_torch_save") is None else f"{r['ratio_torch_save']:.0f}x smaller than torch.save",
                    f"paper: {r['paper_ratio']}x, {r['paper_error_before'] - r['paper_error_after']:+.2f} points"])
    lottery = {round(r["weights_percent"], 1): r for r in rows if r["table"].startswith("Lottery")}
    for r in (lottery.get(w) for w in (6.9, 3.5)):
        if r is not None:
            out.append([f"Lottery ticket, LeNet-300-100 at {r['weights_percent']:.1f}% of the weights",
                        f"ticket {100 * r['ticket']:.1f}%, random re-init {100 * r['random']:.1f}% "
                        f"(dense {100 * r['dense']:.1f}%)", "(TinyTorch only)",
                        f"ticket - dense {r['ticket_minus_dense_points']:+.1f} points; worst seed's ticket - random "
                        f"{r['ticket_over_random_worst_seed_points']:+.1f} points"])
    for r in (r for r in rows if r["table"].startswith("Structured pruning of LeNet-5, half")):
        out.append(["LeNet-5, half the units removed: speedup at batch 64 (one thread)",
                    f"{r['speedup']:.2f}x (FLOP ratio {r['flop_ratio']:.2f})",
                    None if r["torch_speedup"] is None else f"{r['torch_speedup']:.2f}x",
                    None if r["torch_speedup"] is None else f"TinyTorch's speedup {r['speedup'] / r['torch_speedup']:.2f}x "
                                                            "PyTorch's"])
    return out


def plot(rows: list[dict], path: Path) -> None:
    """Three panels: ratios beside the paper's, the lottery curves, speedups beside the FLOP ratio."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    from tinytorch.core.files import write_figure

    fig = Figure(figsize=(15, 4.6), dpi=100)
    dc = [r for r in rows if r["table"].startswith("Deep")]
    lot = [r for r in rows if r["table"].startswith("Lottery")]
    st = [r for r in rows if r["table"].startswith("Structured pruning of LeNet-5, half")]
    if dc:
        ax = fig.add_subplot(1, 3, 1)
        names = [r["network"] for r in dc]
        ax.bar([i - 0.2 for i in range(len(dc))], [r["paper_ratio"] for r in dc], 0.4, label="paper (60,000 images)")
        ax.bar([i + 0.2 for i in range(len(dc))], [r["ratio_fp32"] for r in dc], 0.4,
               yerr=[r["ratio_fp32_spread"] / 2 for r in dc], label="TinyTorch (4,000 images)")
        for i, r in enumerate(dc):
            ax.annotate(f"{-r['drop_points']:+.2f} points", (i + 0.2, r["ratio_fp32"]), ha="center", va="bottom")
        ax.set_xticks(range(len(dc)), names)
        ax.set_ylabel("compression vs fp32 parameters (x)")
        ax.set_title("Deep Compression: prune + share + entropy code", fontsize=10)
        ax.legend(fontsize=8)
    if lot:
        ax = fig.add_subplot(1, 3, 2)
        w = [r["weights_percent"] for r in lot]
        for key, label in (("ticket", "ticket (rewound to init)"), ("random", "same mask, random init")):
            ax.errorbar(w, [100 * r[key] for r in lot], yerr=[50 * r[key + "_spread"] for r in lot], marker="o",
                        label=label)
        ax.axhline(100 * lot[0]["dense"], color="black", linestyle="--", linewidth=0.8, label="dense")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks([80, 50, 20, 10, 7, 3.5], ["80", "50", "20", "10", "7", "3.5"])
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%), log scale")
        ax.set_ylabel("test accuracy at best validation loss (%)")
        ax.set_title("Lottery ticket, LeNet-300-100", fontsize=10)
        ax.legend(fontsize=8)
    if st:
        ax, r = fig.add_subplot(1, 3, 3), st[0]
        values = [r["flop_ratio"], r["speedup"], r["torch_speedup"] or 0]
        bars = ax.bar(["FLOP ratio", "TinyTorch", "PyTorch"], values, color=["grey", "tab:blue", "tab:orange"])
        ax.bar_label(bars, fmt="%.2fx")
        ax.set_ylabel("masked / smaller (x)")
        ax.set_title("LeNet-5, half the units removed: speedup", fontsize=10)
    fig.tight_layout()
    write_figure(fig, path, dpi=100)
