"""Every benchmark follows the protocol: `main(argv)` prints its table and returns rows of the expected keys.

Each runs in its quickest mode (small layers, one or two rounds): these tests check that
the benchmarks work and what they return, not how fast anything is.
"""
from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import run_all  # noqa: E402

PRUNE = {"method", "weights", "sparsity", "tinytorch_s", "tinytorch_spread", "tinytorch_extra_x", "torch_s",
         "torch_spread", "torch_extra_x", "speedup"}
STRUCTURED = {"model", "batch", "ratio", "clock", "params", "params_removed", "flop_ratio", "masked_ms", "removed_ms",
              "speedup", "speedup_over_flop_ratio", "max_abs_diff", "masked_spread", "removed_spread", "flags",
              "torch_dense_ms", "torch_pruned_ms", "torch_removed_ms", "removal_ms", "torch_pruning_removal_ms",
              "torch_pruning_max_abs_diff", "layers"}
SAVE = {"format", "bytes", "save_s", "load_s", "save_spread", "load_spread", "exact", "weights",
        "x_smaller_than_dense_fp32"}
STEP = {"table", "framework", "us_per_step", "min_us", "spread", "steady", "threads"}
PIPELINE = {"seed", "weights", "dense_fp32_bytes", "tinytorch_dense", "tinytorch_final", "tinytorch_int8_accuracy",
            "tinytorch_int8_bytes", "tinytorch_cpu_seconds", "torch_dense", "torch_final", "torch_cpu_seconds",
            "torch_dense_bytes", "torch_csr_bytes", "torch_dense_xz_bytes"}
SPARSE = {"batch", "sparsity", "dense_ms", "csr_scipy_ms", "speedup_scipy", "crossover_scipy", "torch_dense_ms"}


def run(name: str, argv: list[str], capsys) -> list[dict]:
    """The benchmark's main on `argv`: its rows, checked to be a non-empty list of dicts, and what it printed."""
    rows = importlib.import_module(f"benchmarks.{name}").main(argv)
    assert isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows), rows
    assert capsys.readouterr().out.strip(), f"{name} printed nothing"
    return rows


def test_prune_rows_from_the_child_processes_json(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    rows = run("bench_prune", ["--quick", "--width", "128", "--method", "structured"], capsys)
    (row,) = rows
    assert set(row) == PRUNE and row["method"] == "structured" and row["weights"] == 4 * 128 * 128
    assert row["tinytorch_s"] > 0 and row["torch_s"] > 0 and row["speedup"] == pytest.approx(
        row["torch_s"] / row["tinytorch_s"])


def test_structured_rows_hold_the_timings_and_the_layer_table(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    rows = run("bench_structured", ["--quick", "--repeats", "1", "--ratios", "0.5"], capsys)
    assert [r["model"] for r in rows] == ["MLP 512-512-512-10", "digits CNN", "CIFAR-shaped CNN 8/16"]
    for r in rows:
        assert set(r) == STRUCTURED and r["ratio"] == 0.5 and r["max_abs_diff"] < 1e-4
        assert r["speedup"] == pytest.approx(r["masked_ms"] / r["removed_ms"]) and r["torch_dense_ms"] > 0
    assert rows[0]["layers"] is None and {"layer", "masked_us", "removed_us", "flop_ratio"} <= set(rows[1]["layers"][0])
    assert run_all.headline_structured(rows)  # the summary reads these rows


def test_save_rows_come_back_exact(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    rows = run("bench_save", ["--quick", "--repeats", "1"], capsys)
    assert all(set(r) == SAVE and r["exact"] for r in rows)
    assert len(rows) == 5 and rows[0]["format"] == "TinyTorch save_compressed, float32"
    assert run_all.headline_save(rows)


def test_training_step_rows_per_framework(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    mlp = run("bench_mlp_step", ["--repeats", "1", "--steps", "1"], capsys)
    assert [r["framework"] for r in mlp] == ["tinytorch", "pytorch"]
    assert all(STEP | {"optimizer"} == set(r) and r["us_per_step"] > 0 for r in mlp)
    cnn = run("bench_cnn_step", ["--repeats", "1", "--steps", "1", "--quick"], capsys)
    steps = [r for r in cnn if r["table"] == "training step"]
    assert [r["framework"] for r in steps] == ["tinytorch", "pytorch"] and all(set(r) == STEP for r in steps)
    convs = [r for r in cnn if r["table"] != "training step"]
    assert [r["filters"] for r in convs] == [64, 32, 16, 8] * 2
    assert [r["flops_vs_widest"] for r in convs[:4]] == pytest.approx([1, 0.5, 0.25, 0.125])
    assert run_all.headline_step("x")(mlp)[0][3].startswith("TinyTorch takes")


def test_pipeline_rows_show_the_twin_runs_agree(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    (row,) = run("bench_pipeline", ["--quick"], capsys)
    assert PIPELINE <= set(row)
    # the same weights, batches and pruning counts; float32 in a different order: an image or two apart
    assert abs(row["tinytorch_dense"] - row["torch_dense"]) <= 2 / 360
    assert abs(row["tinytorch_final"] - row["torch_final"]) <= 3 / 360
    assert row["tinytorch_sparsity"] == pytest.approx(0.9, abs=1 / 17024)
    assert row["torch_sparsity"] == pytest.approx(0.9, abs=1 / 17024)
    assert len(run_all.headline_pipeline([row])) == 2


def test_sparse_rows(capsys):
    pytest.importorskip("torch")  # its rows set PyTorch beside TinyTorch
    rows = run("bench_sparse", ["--quick", "--repeats", "1", "--size", "128"], capsys)
    assert all(SPARSE <= set(r) for r in rows) and {r["batch"] for r in rows} == {1, 64}
    assert run_all.headline_sparse(rows)


def test_training_and_question_rows(capsys, tmp_path, monkeypatch):
    (row,) = run("bench_digits_train", ["--seeds", "0", "--model", "mlp"], capsys)
    assert set(row) == {"model", "seed", "test_accuracy", "correct_of_360", "train_s"}
    assert row["correct_of_360"] == round(row["test_accuracy"] * 360) and row["test_accuracy"] > 0.9
    rows = run("bench_questions", ["--seeds", "0", "--only", "lowrank"], capsys)
    assert {r["table"] for r in rows} == {"low rank against pruning at equal weights"}
    assert {"fraction", "arm", "accuracy", "accuracy_sd", "bytes"} <= set(rows[0]) and len(rows) == 9
    from benchmarks import bench_sharing

    # NOTE: its quickest mode still trains two networks and four codebooks: one network, one codebook here
    monkeypatch.setattr(bench_sharing, "NETWORKS", dict(list(bench_sharing.NETWORKS.items())[:1]))
    monkeypatch.setattr(bench_sharing, "BITS", bench_sharing.BITS[:1])
    rows = run("bench_sharing", ["--out", str(tmp_path), "--seeds", "1", "--quick"], capsys)
    assert {"network", "sparsity", "setting", "bytes", "ratio", "accuracy"} <= set(rows[0])
    assert (tmp_path / "sharing.json").is_file() and not any(math.isnan(r["bytes"]) for r in rows)


def test_the_plan_names_benchmarks_that_exist_with_a_quick_and_a_full_argv(tmp_path):
    for quick in (True, False):
        entries = run_all.plan(quick, tmp_path)
        assert len({name for _, name, _ in entries}) == len(entries) == 11
        for title, name, argv in entries:
            module = importlib.import_module(f"benchmarks.{name}")
            assert callable(module.main) and title and all(isinstance(a, str) for a in argv)
