"""The benchmark runner: one loop over the plan, sections and summary from returned rows, failures reported.

Fake benchmarks (modules put in `sys.modules` as `benchmarks.<name>`) stand in for the
real ones, so these tests check the assembly in a fraction of a second.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import run_all  # noqa: E402


def pipeline_row(seed=0, torch=True):
    row = {"seed": seed, "weights": 17226, "dense_fp32_bytes": 68904, "tinytorch_dense": 0.96,
           "tinytorch_steps": [0.95, 0.96], "tinytorch_final": 0.9639, "tinytorch_sparsity": 0.9,
           "tinytorch_seconds": 2.0, "tinytorch_cpu_seconds": 1.5, "tinytorch_fp32_bytes": 11000,
           "tinytorch_int8_bytes": 3200, "tinytorch_int8_accuracy": 0.9611}
    for key, value in {"dense": 0.9611, "steps": [0.95, 0.955], "final": 0.9583, "sparsity": 0.9, "seconds": 3.0,
                       "cpu_seconds": 2.5, "dense_bytes": 71637, "csr_bytes": 40000, "dense_xz_bytes": 12000}.items():
        row[f"torch_{key}"] = value if torch else None
    return row


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


def fake_benchmark(monkeypatch, name: str, main, doc: str = "A fake benchmark.\n\nGoal: none.") -> None:
    """`benchmarks.<name>` with this `main`, for as long as the test runs."""
    module = types.ModuleType(f"benchmarks.{name}", doc)
    module.main = main
    monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)


def test_report_names_the_machine_the_command_and_the_summary():
    info = run_all.machine()
    assert {"CPU", "cores", "memory", "python", "numpy", "torch", "date"} <= set(info)
    sections = [run_all.Section("A section", "python benchmarks/bench_x.py", "body", 1.0, [["m", "1", None, "c"]])]
    text = run_all.report(info, sections, quick=False)
    assert "`python -m benchmarks`" in text and "## A section" in text and info["CPU"] in text
    assert "| m | 1 | " + run_all.NO_TORCH + " | c |" in text and "failed" not in text
    assert "quick run" not in text
    assert "quick run" in run_all.report(info, [], quick=True)


def test_each_main_is_called_with_its_argv_and_its_rows_make_the_section(monkeypatch, tmp_path, capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        print("the benchmark's own table")
        return [{"table": "first", "size": 1, "ms": 2.5}, {"table": "second", "x": None}]

    fake_benchmark(monkeypatch, "fake_ok", main)
    monkeypatch.setattr(run_all, "plan", lambda quick, scratch: [("Fake", "fake_ok", ["--quick"] if quick else [])])
    out = tmp_path / "RESULTS.md"
    assert run_all.main(["--quick", "--out", str(out)]) == 0
    assert seen == [["--quick"]]
    text = out.read_text()
    assert "## Fake" in text and "`python benchmarks/fake_ok.py --quick`" in text
    assert "A fake benchmark.\n\nGoal: none.\n\nfirst:\n\n| size | ms |" in text and "| 1 | 2.5 |" in text
    assert "second:\n\n| x |" in text and "| n/a |" in text
    assert "the benchmark's own table" in capsys.readouterr().out  # printed, not parsed


def test_a_failing_benchmark_is_reported_and_the_run_exits_non_zero(monkeypatch, tmp_path):
    def broken(argv):
        raise RuntimeError("broken benchmark")

    fake_benchmark(monkeypatch, "fake_bad", broken)
    fake_benchmark(monkeypatch, "fake_good", lambda argv: [{"a": 1}])
    fake_benchmark(monkeypatch, "fake_text", lambda argv: "printed text is not rows")
    monkeypatch.setattr(run_all, "plan", lambda quick, scratch: [
        ("Bad", "fake_bad", []), ("Good", "fake_good", []), ("Text", "fake_text", []), ("Gone", "fake_gone", [])])
    out = tmp_path / "RESULTS.md"
    assert run_all.main(["--quick", "--out", str(out)]) == 1
    text = out.read_text()
    bad, good, wrong, gone = (text.split(f"## {t}\n")[1].split("\n## ")[0] for t in ("Bad", "Good", "Text", "Gone"))
    assert "**failed:**" in bad and "RuntimeError: broken benchmark" in bad
    assert "| a |" in good and "failed" not in good
    assert "fake_text.main must return a list of dicts (its rows), got str" in wrong
    assert "No module named 'benchmarks.fake_gone'" in gone  # no "not yet available": a missing benchmark fails
    assert "**Failed in this run (see their sections):** Bad; Text; Gone" in text
    assert "3 section(s) failed" in text


def test_rows_the_summary_cannot_read_fail_their_section(monkeypatch):
    fake_benchmark(monkeypatch, "fake_shape", lambda argv: [{"model": "x", "ratio": 0.5}])
    monkeypatch.setitem(run_all.HEADLINE, "fake_shape", run_all.headline_structured)
    section = run_all.run_one("Shape", "fake_shape", [])
    assert section.error is not None and "KeyError: 'speedup'" in section.error and section.headline == []
    assert "**failed:**" in section.body and "Failed in this run" in run_all.summary([section])


def test_the_command_shows_project_paths_relative():
    assert run_all.command("bench_x", ["--out", str(run_all.HERE / "figures"), "--quick"]) == \
        "python benchmarks/bench_x.py --out benchmarks/figures --quick"


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
    rows = {
        "bench_prune": [{"method": "global", "weights": 16_777_216, "sparsity": 0.9, "tinytorch_s": 0.25,
                         "tinytorch_spread": 0.1, "tinytorch_extra_x": 0.0, "torch_s": 9.0, "torch_spread": 0.1,
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
        "bench_mlp_step": [{"table": "training step", "framework": "tinytorch", "us_per_step": 420.0},
                           {"table": "training step", "framework": "pytorch", "us_per_step": 840.0}],
    }
    sections = [run_all.Section(name, "cmd", headline=run_all.HEADLINE[name](r)) for name, r in rows.items()]
    text = run_all.summary(sections)
    assert ("| Global magnitude pruning, 16.8M weights to 90% | 0.250 s, 0.0x weights extra memory | 9.000 s, "
            "16.0x weights extra memory | TinyTorch 36.0x faster |") in text
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
    never = dict(rows["bench_sparse"][1], crossover_scipy=None)
    assert "CSR never faster; 4.0x at 95%" in run_all.headline_sparse([never])[0][1]
    assert run_all.summary([]) == "(no benchmark ran)"


def test_a_value_and_its_spread_share_a_cell():
    rows = [{"arm": "a", "accuracy": 0.95, "accuracy_sd": 0.01, "bytes": 1000.0, "bytes_spread": 40.0,
             "us": float("nan"), "us_sd": 0.0}]
    text = run_all.generic_table(rows)
    assert text.splitlines()[0] == "| arm | accuracy (± sd) | bytes (± half range) | us (± sd) |"
    assert "| a | 0.95 ± 0.01 | 1,000 ± 20 | n/a |" in text
    assert run_all.fmt(float("nan")) == "n/a"
