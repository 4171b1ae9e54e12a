"""benchmarks/bench_papers.py: its quick mode runs and returns the three tables; its verdicts follow the goals."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_papers, run_all  # noqa: E402

DC = {"network", "sparsity", "bits", "seeds", "dense_accuracy", "accuracy", "drop_points", "bytes", "ratio_fp32",
      "ratio_fp32_spread", "ratio_torch_save", "paper_ratio", "goal_ratio", "goal_met"}
LOTTERY = {"round", "weights_percent", "ticket", "ticket_spread", "random", "dense", "ticket_minus_dense_points",
           "ticket_over_random_worst_seed_points", "ticket_best_iteration", "random_best_iteration"}
STRUCTURED = {"params", "params_removed", "flop_ratio", "masked_ms", "removed_ms", "speedup", "torch_speedup",
              "goal_met"}


@pytest.mark.slow
def test_quick_mode_returns_the_papers_rows_and_writes_its_files(capsys, tmp_path):
    pytest.importorskip("torch")
    rows = bench_papers.main(["--quick", "--seeds", "1", "--out", str(tmp_path)])
    assert "Deep Compression" in capsys.readouterr().out
    dc = [r for r in rows if r["table"].startswith("Deep")]
    assert [r["network"] for r in dc] == ["LeNet-300-100", "LeNet-5"] and all(DC <= set(r) for r in dc)
    for r in dc:
        # The ratio is fp32 bytes (4 per parameter) over the file's bytes, as the paper counts.
        params = 266_610 if r["network"] == "LeNet-300-100" else 431_080
        assert r["ratio_fp32"] == pytest.approx(4 * params / r["bytes"]) and r["ratio_fp32"] > 5
        assert r["ratio_torch_save"] > 0.99 * r["ratio_fp32"] and r["accuracy"] > 0.5
    lottery = [r for r in rows if r["table"].startswith("Lottery")]
    assert [r["round"] for r in lottery] == [1, 2] and all(LOTTERY <= set(r) for r in lottery)
    assert [round(r["weights_percent"], 1) for r in lottery] == [80.0, 64.0]
    (st,) = [r for r in rows if r["table"].startswith("Structured pruning of LeNet-5, half")]
    assert STRUCTURED <= set(st) and st["params_removed"] < st["params"] / 3 and st["flop_ratio"] > 3
    layers = [r for r in rows if r["table"].endswith("(compare_layer_times)")]
    assert [r["layer"].split()[1] for r in layers][:4] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert (tmp_path / "papers.png").stat().st_size > 0
    assert json.loads((tmp_path / "papers.json").read_text())["rows"][0]["network"] == "LeNet-300-100"
    assert len(run_all.HEADLINE["bench_papers"](rows)) == 3  # two networks, the speedup (no 7% round here)


def test_summaries_and_verdicts_follow_the_rows():
    base = {"network": "LeNet-5", "sparsity": 0.96, "bits": 4, "pruned_accuracy": 0.98, "ratio_torch_save": 1.0}
    raw = [base | {"seed": 0, "dense_accuracy": 0.980, "accuracy": 0.978, "drop_points": 0.2, "bytes": 30_000,
                   "ratio_fp32": 57.0},
           base | {"seed": 1, "dense_accuracy": 0.982, "accuracy": 0.978, "drop_points": 0.4, "bytes": 20_000,
                   "ratio_fp32": 63.0}]
    (row,) = bench_papers.dc_table(raw)
    assert row["ratio_fp32"] == pytest.approx(60.0) and row["ratio_fp32_spread"] == pytest.approx(6.0)
    assert row["drop_points"] == pytest.approx(0.3) and row["goal_met"] and row["paper_ratio"] == 39
    (worse,) = bench_papers.dc_table([raw[1], raw[1] | {"seed": 2}])
    assert not worse["goal_met"]  # 0.4 points lost
    arm = {"weights": 0.2, "final_accuracy": 0.5}
    lottery = [{"seed": s, "round": 0, "arm": "dense", "weights": 1.0, "accuracy": 0.95, "best_iteration": 300,
                "final_accuracy": 0.95} for s in (0, 1)]
    lottery += [arm | {"seed": 0, "round": 7, "arm": "ticket", "accuracy": 0.96, "best_iteration": 200},
                arm | {"seed": 0, "round": 7, "arm": "random", "accuracy": 0.90, "best_iteration": 400},
                arm | {"seed": 1, "round": 7, "arm": "ticket", "accuracy": 0.93, "best_iteration": 100},
                arm | {"seed": 1, "round": 7, "arm": "random", "accuracy": 0.92, "best_iteration": 400}]
    (r,) = bench_papers.lottery_table(lottery)
    assert r["ticket"] == pytest.approx(0.945) and r["ticket_spread"] == pytest.approx(0.03)
    assert r["ticket_over_random_worst_seed_points"] == pytest.approx(1.0)
    assert r["ticket_minus_dense_points"] == pytest.approx(-0.5) and r["ticket_best_iteration"] == 150
