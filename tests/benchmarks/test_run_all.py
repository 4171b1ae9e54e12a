"""The benchmark runner: its report, its handling of missing benchmarks and PyTorch, and the pipeline's twin runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_pipeline, run_all  # noqa: E402


def pipeline_row(seed=0, torch=True):
    row = {"seed": seed, "weights": 17226, "dense_fp32_bytes": 68904, "tinytorch_dense": 0.96,
           "tinytorch_steps": [0.95, 0.96], "tinytorch_final": 0.9639, "tinytorch_sparsity": 0.9,
           "tinytorch_seconds": 2.0, "tinytorch_cpu_seconds": 1.5, "tinytorch_fp32_bytes": 11000,
           "tinytorch_int8_bytes": 3200, "tinytorch_int8_accuracy": 0.9611}
    for key, value in {"dense": 0.9611, "steps": [0.95, 0.955], "final": 0.9583, "sparsity": 0.9, "seconds": 3.0,
                       "cpu_seconds": 2.5, "dense_bytes": 71637, "csr_bytes": 40000, "dense_xz_bytes": 12000}.items():
        row[f"torch_{key}"] = value if torch else None
    return row


def test_missing_benchmark_is_reported_as_not_yet_available():
    assert run_all.run_module("bench_that_does_not_exist", []) is None
    sections = {title: run for title, _, run in run_all.plan(quick=True, found={})}
    assert any("Sparse vs dense" in title for title in sections)


def test_pipeline_and_bytes_sections_show_both_frameworks():
    rows = [pipeline_row(0), pipeline_row(1)]
    text = run_all.section_pipeline(rows)
    assert "| 0 | 96.0% | 96.1% | 96.4% | 95.8% | 96.1% | 1.50 | 2.50 |" in text
    assert "| mean |" in text
    size = run_all.section_bytes(rows)
    assert "| 3,200 | 22.4x |" in size  # 71,637 / 3,200
    assert "| 71,637 | 1.0x |" in size


def test_without_torch_its_columns_say_so():
    rows = [pipeline_row(torch=False)]
    assert run_all.NO_TORCH in run_all.section_pipeline(rows)
    assert run_all.NO_TORCH in run_all.section_bytes(rows)
    assert run_all.fmt(None) == run_all.NO_TORCH


def test_report_names_the_machine_and_the_command():
    info = run_all.machine()
    assert {"CPU", "cores", "memory", "python", "numpy", "torch", "date"} <= set(info)
    text = run_all.report(info, [("A section", "python benchmarks/bench_x.py", "body", 1.0)], quick=False, failed=0)
    assert "`python -m benchmarks`" in text and "## A section" in text and info["CPU"] in text
    assert "quick run" not in text
    assert "quick run" in run_all.report(info, [], quick=True, failed=0)


def test_a_failing_benchmark_does_not_stop_the_others(monkeypatch, tmp_path, capsys):
    def boom():
        raise RuntimeError("broken benchmark")

    monkeypatch.setattr(run_all, "plan", lambda quick, found: [("bad", "cmd", boom), ("good", "cmd", lambda: "fine")])
    out = tmp_path / "RESULTS.md"
    assert run_all.main(["--quick", "--out", str(out)]) == 1
    text = out.read_text()
    assert "broken benchmark" in text and "fine" in text and "1 section(s) failed" in text


def test_twin_pipelines_match_on_the_same_weights_and_batches():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    data = bench_pipeline.digits()
    model = bench_pipeline.tinytorch_model(0)
    twin = bench_pipeline.torch_copy(torch, model)
    ours = bench_pipeline.run_tinytorch(model, data, bench_pipeline.QUICK, 0)
    theirs = bench_pipeline.run_torch(torch, twin, data, bench_pipeline.QUICK, 0)
    # float32 in a different order: the two may disagree on an image or two, not more
    assert abs(ours["dense"] - theirs["dense"]) <= 2 / 360
    assert abs(ours["final"] - theirs["final"]) <= 3 / 360
    assert ours["sparsity"] == pytest.approx(0.9, abs=1 / 17024)
    assert theirs["sparsity"] == pytest.approx(0.9, abs=1 / 17024)


def test_tito_bench_needs_the_benchmarks_folder(tmp_path, monkeypatch):
    from tito.bench import run_benchmarks
    from tito.project import TitoError

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "modules").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TitoError, match="benchmarks"):
        run_benchmarks(quick=True)


def test_rows_of_other_benchmarks_become_a_table_with_their_goal():
    doc = "One line about it.\n\nDetails.\n\nGoal: at 95% sparsity, 2x.\n"
    text = run_all.section_rows([{"sparsity": 0.95, "speedup": 2.5, "crossover": None}], doc)
    assert text.startswith("One line about it.\n\nGoal: at 95% sparsity, 2x.")
    assert "| sparsity | speedup | crossover |" in text and "| 0.95 | 2.5 | n/a |" in text


def test_rows_holding_rows_get_tables_of_their_own():
    rows = [{"model": "cnn", "batch": 8, "ratio": 0.5, "speedup": 2.0,
             "layers": [{"layer": "0 Conv2d", "speedup": 1.5}, {"layer": "1 ReLU", "speedup": 2.0}]},
            {"model": "mlp", "batch": 8, "ratio": 0.5, "speedup": 3.0, "layers": None}]
    text = run_all.generic_table(rows)
    main, rest = text.split("\n\n", 1)
    assert "layers" not in main and "| cnn | 8 | 0.5 | 2 |" in main and "| mlp | 8 | 0.5 | 3 |" in main
    assert rest.startswith("layers (model cnn, batch 8, ratio 0.5):")
    assert "| 0 Conv2d | 1.5 |" in rest and "| 1 ReLU | 2 |" in rest and "mlp" not in rest


def test_summary_picks_the_headline_of_each_benchmark():
    found = {
        "bench_prune": [{"method": "global", "tinytorch_s": 0.25, "tinytorch_extra_x": 0.0, "torch_s": 9.0,
                         "torch_extra_x": 16.0, "speedup": 36.0}],
        "bench_pipeline": [pipeline_row(0), pipeline_row(1)],
        "bench_structured": [{"model": "digits CNN", "ratio": 0.5, "speedup": 1.75, "flop_ratio": 3.5,
                              "torch_dense_ms": 1.5, "torch_pruned_ms": 1.5, "torch_removed_ms": 1.2},
                             {"model": "MLP 8-8", "ratio": 0.5, "speedup": 3.0, "flop_ratio": 3.2,
                              "torch_dense_ms": 1.5, "torch_pruned_ms": 1.5, "torch_removed_ms": 0.5,
                              "removal_ms": 2.0, "torch_pruning_removal_ms": 9.0, "torch_pruning_max_abs_diff": 1e-7},
                             {"model": "digits CNN", "ratio": 0.25, "speedup": 1.2, "flop_ratio": 1.6}],
        "bench_sparse": [{"batch": 1, "sparsity": 0.9, "dense_ms": 1.0, "csr_scipy_ms": 0.5, "speedup_scipy": 2.0,
                          "crossover_scipy": 0.78, "torch_dense_ms": 1.2},
                         {"batch": 1, "sparsity": 0.95, "dense_ms": 1.0, "csr_scipy_ms": 0.25, "speedup_scipy": 4.0,
                          "crossover_scipy": 0.78, "torch_dense_ms": 1.2}],
        "bench_save": [{"format": "TinyTorch save_compressed, float32", "bytes": 600, "save_s": 1.25,
                        "weights": 2_000_000},
                       {"format": "TinyTorch prune_and_quantize + save_compressed, int8", "bytes": 200, "save_s": 0.5},
                       {"format": "torch.save, dense state_dict", "bytes": 8000, "save_s": 0.1},
                       {"format": "torch.save dense, then xz (preset 6)", "bytes": 900, "save_s": 40.0}],
        "bench_mlp_step": "  tinytorch     420.0 us/step\n  pytorch       840.0 us/step\n",
        "bench_sparse_missing": None,
    }
    text = run_all.summary(found)
    assert "| 0.250 s, 0.0x weights extra memory | 9.000 s, 16.0x weights extra memory | TinyTorch 36.0x faster |" in text
    assert "96.4% (dense 96.0%; 96.1% after INT8" in text and "+0.6 points" in text
    assert "3,200 (sparse INT8 file)" in text and "22.4x smaller than torch.save" in text
    assert "digits CNN, 50% of units removed" in text and "1.75x (FLOP ratio 3.50)" in text and "25%" not in text
    assert "| 1.25x (the same smaller model); 1.00x (prune.ln_structured: same shapes, masked) |" in text
    assert ("| MLP 8-8: removing 50% of the units (a new, smaller model) | 2.0 ms (remove_pruned_units; the "
            "input model is kept) | 9.0 ms (Torch-Pruning, in place; outputs agree to 1e-07) | TinyTorch 4.5x faster |"
            in text)
    assert "digits CNN: removing" not in text
    assert "CSR faster from 78% sparsity; 4.0x at 95%" in text
    assert "| 420 us | 840 us | TinyTorch takes 0.50x PyTorch's time |" in text
    assert ("| Saving 2.0M weights pruned to 90%: bytes and seconds | 600 B in 1.2 s (float32, exact); 200 B in "
            "0.5 s (INT8) | 8,000 B in 0.10 s (torch.save); 900 B in 40 s (then xz) | float32 file 13.3x smaller "
            "than torch.save, 1.5x smaller than xz |") in text
    broken = run_all.summary({"bench_structured": [{"model": "x", "ratio": 0.5}]})  # rows of another shape
    assert broken == "(no benchmark ran)"
