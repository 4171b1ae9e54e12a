"""`tito demo compression`: one quick run, checked through its table, its JSON, its files and its plot."""
from __future__ import annotations

import dataclasses
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tito import cli, demo
from tito.project import TitoError

MLP_STAGES = ["dense", "pruned", "int8", "shared"]
ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"model", "key", "stage", "accuracy", "params", "nonzero", "file", "bytes", "ratio", "latency_ms",
          "speedup", "note"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(results.json, printed text, output folder) of one `tito demo compression --quick`, run as a user would."""
    out = tmp_path_factory.mktemp("demo") / "compression-demo"
    # NOTE: a fresh interpreter, so the command sets BLAS to one thread before NumPy loads
    # (in this process NumPy is loaded already); COLUMNS gives rich's table room.
    env = dict(os.environ, COLUMNS="100", MPLBACKEND="Agg", TINYTORCH_QUIET="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "tito", "demo", "compression", "--quick", "--out", str(out)],
                          cwd=out.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / demo.RESULTS_FILE).read_text()), proc.stdout, out


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) chunks of a PNG file, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"not a PNG signature: {data[:8]!r}"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_json_describes_the_run(quick_run):
    results, _, out = quick_run
    assert results["demo"] == "compression" and results["quick"] is True and results["seed"] == 0
    assert results["files"] == {"results": demo.RESULTS_FILE, "plot": demo.PLOT_FILE,
                                "models": [row["file"] for row in results["stages"]]}
    assert results["recipe"] == dataclasses.asdict(demo.QUICK)


def test_stages_have_every_field_and_the_bytes_are_the_files(quick_run):
    results, _, out = quick_run
    stages = results["stages"]
    assert [r["key"] for r in stages if r["model"] == "mlp"] == MLP_STAGES
    cnn = [r["key"] for r in stages if r["model"] == "cnn"]
    assert cnn[0] == "dense" and cnn[1] == "pruned" and cnn[-1] == "int8"
    for row in stages:
        assert set(row) == FIELDS, row
        assert row["bytes"] == (out / row["file"]).stat().st_size, row
        assert 0.0 <= row["accuracy"] <= 1.0 and 0 < row["nonzero"] <= row["params"]
        assert row["latency_ms"] > 0
    for net in ("mlp", "cnn"):
        rows = [r for r in stages if r["model"] == net]
        assert rows[0]["ratio"] == 1.0 and rows[0]["speedup"] == 1.0
        for row in rows:
            assert row["ratio"] == pytest.approx(rows[0]["bytes"] / row["bytes"])
            assert row["speedup"] == pytest.approx(rows[0]["latency_ms"] / row["latency_ms"])


def test_mlp_is_pruned_to_90_percent_and_int8_is_smallest(quick_run):
    results, _, _ = quick_run
    dense, pruned, int8, shared = [r for r in results["stages"] if r["model"] == "mlp"]
    weights = 64 * 128 + 128 * 64 + 64 * 10
    biases = dense["params"] - weights
    assert dense["nonzero"] == dense["params"] == weights + biases
    # exactly round(0.9 n) weights are pruned; biases are never unstructured-pruned
    assert abs(pruned["nonzero"] - (weights - round(0.9 * weights) + biases)) <= 2
    assert int8["bytes"] < pruned["bytes"] < dense["bytes"]
    assert shared["bytes"] < int8["bytes"] and shared["nonzero"] <= int8["nonzero"]
    assert results["curves"]["mlp"]["iterative_final"][0] == pytest.approx(0.9, abs=1 / weights)


def test_cnn_removal_makes_a_smaller_model(quick_run):
    results, _, _ = quick_run
    rows = {r["key"]: r for r in results["stages"] if r["model"] == "cnn"}
    assert rows["pruned"]["params"] == rows["dense"]["params"]  # masked: same shapes, zeros inside
    assert rows["pruned"]["nonzero"] < rows["dense"]["nonzero"]
    assert rows["removed"]["params"] < rows["pruned"]["params"]
    assert rows["removed"]["accuracy"] == pytest.approx(rows["pruned"]["accuracy"], abs=1 / 360 + 1e-9)
    assert rows["int8"]["bytes"] < min(r["bytes"] for k, r in rows.items() if k != "int8")


def test_curves_compare_one_shot_and_iterative(quick_run):
    results, _, _ = quick_run
    for net in ("mlp", "cnn"):
        curve = results["curves"][net]
        assert len(curve["one_shot"]) >= 3 and len(curve["iterative"]) == results["recipe"][f"{net}_steps"] + 1
        xs = [x for x, _ in curve["iterative"]]
        assert xs == sorted(xs) and xs[0] == 0.0
        assert all(0.0 <= a <= 1.0 for _, a in curve["one_shot"] + curve["iterative"])


def test_table_is_printed_with_every_stage(quick_run):
    results, text, out = quick_run
    assert "Compression, stage by stage" in text
    for header in ("accuracy", "non-zero", "bytes", "ratio", "latency", "speedup"):
        assert header in text
    lines = text.splitlines()
    for row in results["stages"]:
        label = f"{row['model'].upper()} {row['stage']}"
        line = next((ln for ln in lines if ln.strip().startswith(label)), None)
        assert line is not None, f"no table row {label!r} in:\n{text}"
        assert f"{row['bytes']:,}" in line and f"{row['accuracy']:.1%}" in line and f"{row['ratio']:.1f}x" in line
    assert "step 1/" in text  # progress of the iterative pruning
    assert str(out / demo.PLOT_FILE) in text.replace("\n", "")


def test_plot_is_a_valid_png(quick_run):
    _, _, out = quick_run
    chunks = png_chunks((out / demo.PLOT_FILE).read_bytes())
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width > 400 and height > 200
    zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))  # raises when corrupt


def test_writes_only_its_own_files(quick_run):
    _, _, out = quick_run
    assert {p.name for p in out.iterdir()} <= demo.DEMO_FILES
    demo.prepare_out(out)  # a folder of an earlier run is accepted again


@pytest.mark.parametrize("existing", [{"notes.txt": "mine"}, {"results.json": '{"mine": 1}'},
                                      {"results.json": '{"demo": "compression"}', "data.csv": "1,2"}])
def test_refuses_a_folder_with_other_files(tmp_path, existing):
    for name, text in existing.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(TitoError, match="--force"):
        demo.run_demo(tmp_path, quick=True)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == existing


def test_force_accepts_the_folder_and_keeps_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert demo.prepare_out(tmp_path, force=True) == tmp_path
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_refuses_a_file_and_creates_a_missing_folder(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(TitoError, match="not a folder"):
        demo.prepare_out(tmp_path / "a-file", force=True)
    assert demo.prepare_out(tmp_path / "new" / "out").is_dir()


def test_cli_refusal_exits_2_and_says_why(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["demo", "compression", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "--force" in err


def test_cli_passes_its_options(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda out, **kw: seen.append((out, kw)) or {})
    assert cli.main(["demo", "compression", "--quick", "--out", str(tmp_path), "--seed", "3", "--force"]) == 0
    assert cli.main(["demo", "compression"]) == 0
    assert seen == [(str(tmp_path), {"quick": True, "seed": 3, "force": True}),
                    (demo.DEFAULT_OUT, {"quick": False, "seed": 0, "force": False})]


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_bad_seed_is_one_line_and_exit_2(tmp_path, capsys, seed):
    assert cli.main(["demo", "compression", "--quick", "--seed", seed, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--seed must be an integer in [0, 2**32), got {seed}" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_an_out_that_cannot_be_created_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for out in (tmp_path / "a-file" / "below", "/proc/no-such-folder/out"):
        assert cli.main(["demo", "compression", "--quick", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {out} cannot be created" in err, err
