"""`tito deploy`: a saved .ttz model converted to ONNX, PyTorch and safetensors, and back."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")
import safetensors.torch  # noqa: E402  (after the skip: only where safetensors is installed)

from tinytorch.compression import load_compressed, prune_and_quantize, save_compressed
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.deploy import onnx_session, run_onnx, to_torch
from tito.cli import main

ROOT = Path(__file__).resolve().parents[2]


def tito(*args: str, cwd: Path, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`tito ...` run in `cwd`: in this process, or with `blocked` packages looking uninstalled
    in a fresh interpreter."""
    if not blocked:
        out, err = io.StringIO(), io.StringIO()
        old = Path.cwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            os.chdir(old)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    code = ("import sys\n"
            "class Absent:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {blocked!r}:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Absent())\n"
            "from tito.cli import main\n"
            f"sys.exit(main({list(args)!r}))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TINYTORCH_QUIET="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 80%-pruned INT8 MLP and CNN saved as .ttz files, with inputs for them."""
    folder = tmp_path_factory.mktemp("deploy")
    manual_seed(0)
    rng = np.random.default_rng(0)
    mlp = prune_and_quantize(Sequential(Linear(64, 32), ReLU(), Linear(32, 10)), 0.8)
    cnn = prune_and_quantize(Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10)), 0.5)
    save_compressed(mlp, folder / "mlp.ttz")
    save_compressed(cnn, folder / "cnn.ttz")
    return folder, {"mlp": rng.random((9, 64), np.float32), "cnn": rng.random((9, 1, 8, 8), np.float32)}


def expected(folder: Path, name: str, x: np.ndarray) -> np.ndarray:
    return load_compressed(folder / f"{name}.ttz")(Tensor(x)).data


def test_round_trip_to_onnx(saved):
    folder, x = saved
    proc = tito("deploy", "mlp.ttz", "--to", "onnx", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "wrote mlp.onnx" in proc.stdout
    onnx.checker.check_model(onnx.load(str(folder / "mlp.onnx")), full_check=True)
    out = run_onnx(onnx_session(folder / "mlp.onnx"), x["mlp"])
    np.testing.assert_allclose(out, expected(folder, "mlp", x["mlp"]), rtol=0, atol=1e-4)


def test_round_trip_to_onnx_with_an_input_shape(saved):
    folder, x = saved
    proc = tito("deploy", "cnn.ttz", "--to", "onnx", "--out", "out.onnx", cwd=folder)
    assert proc.returncode == 2 and "--input-shape" in proc.stderr
    proc = tito("deploy", "cnn.ttz", "--to", "onnx", "--out", "out.onnx", "--input-shape", "1,1,8,8", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    out = run_onnx(onnx_session(folder / "out.onnx"), x["cnn"])
    np.testing.assert_allclose(out, expected(folder, "cnn", x["cnn"]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("to, reader", [("torch", lambda p: torch.load(p, weights_only=True)),
                                        ("safetensors", lambda p: safetensors.torch.load_file(p))])
def test_round_trip_to_torch_and_safetensors(saved, to, reader):
    folder, x = saved
    out = folder / f"mlp_{to}.bin"
    proc = tito("deploy", "mlp.ttz", "--to", to, "--out", out.name, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    twin = to_torch(load_compressed(folder / "mlp.ttz"))
    for p in twin.parameters():
        torch.nn.init.zeros_(p)
    twin.load_state_dict(reader(str(out)), strict=True)
    with torch.no_grad():
        got = twin(torch.from_numpy(x["mlp"])).numpy()
    np.testing.assert_allclose(got, expected(folder, "mlp", x["mlp"]), rtol=0, atol=1e-5)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tito: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_corrupt_or_missing_file_is_refused_before_anything_is_written(saved, tmp_path):
    folder, _ = saved
    blob = (folder / "mlp.ttz").read_bytes()
    (tmp_path / "cut.ttz").write_bytes(blob[: len(blob) // 2])
    flipped = bytearray(blob)
    flipped[-5] ^= 0xFF
    (tmp_path / "flipped.ttz").write_bytes(bytes(flipped))
    (tmp_path / "foreign.ttz").write_bytes(b"PK\x03\x04 not ours at all")
    for name in ("cut", "flipped", "foreign"):
        one_line_error(tito("deploy", f"{name}.ttz", "--to", "onnx", cwd=tmp_path), f"{name}.ttz", "nothing was written")
    one_line_error(tito("deploy", "missing.ttz", "--to", "safetensors", cwd=tmp_path), "missing.ttz", "no such file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.ttz", "flipped.ttz", "foreign.ttz"]


def test_an_unwritable_output_is_one_line(saved, tmp_path):
    folder, _ = saved
    one_line_error(tito("deploy", str(folder / "mlp.ttz"), "--to", "onnx", "--out", str(tmp_path / "no" / "m.onnx"),
                        cwd=tmp_path), "does not exist")
    one_line_error(tito("deploy", str(folder / "mlp.ttz"), "--to", "onnx", "--out", str(tmp_path), cwd=tmp_path),
                   "folder")
    one_line_error(tito("deploy", "mlp.ttz", "--to", "onnx", "--out", "mlp.ttz", cwd=folder), "input file itself")


def test_a_missing_extra_names_it(saved, tmp_path):
    folder, _ = saved
    for to, package in (("onnx", "onnx"), ("torch", "torch"), ("safetensors", "safetensors")):
        proc = tito("deploy", str(folder / "mlp.ttz"), "--to", to, "--out", str(tmp_path / "x"), cwd=tmp_path,
                    blocked=("torch", "onnx", "onnxruntime", "safetensors"))
        one_line_error(proc, package, 'pip install "tinytorch[deploy]"')
    assert not list(tmp_path.iterdir())
