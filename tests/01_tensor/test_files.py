"""The one writer (`tinytorch.core.files.write_atomic`) and every saver that uses it.

Special files are made in tmp_path (os.mkfifo, a bound Unix socket): never a real device.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinytorch.core.files import checked_target, write_atomic
from tinytorch.core.layers import Linear, Sequential

ROOT = Path(__file__).resolve().parents[2]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_writes_the_bytes_and_returns_their_count(tmp_path):
    target = tmp_path / "a.bin"
    assert write_atomic(target, b"hello") == 5 and target.read_bytes() == b"hello"
    assert write_atomic(target, b"longer text") == 11 and target.read_bytes() == b"longer text"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask()
    assert temporaries(tmp_path) == []


def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo, folder, sock = tmp_path / "fifo", tmp_path / "folder", tmp_path / "s.sock"
    os.mkfifo(fifo)
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    return {"a FIFO": fifo, "a folder": folder, "a socket": sock}


def test_a_target_that_is_not_a_regular_file_is_refused_and_stays(tmp_path):
    for kind, path in _special_files(tmp_path).items():
        before = os.lstat(path)
        with pytest.raises(OSError, match=re.escape(str(path)) + f" exists and is {kind}"):
            write_atomic(path, b"x")
        after = os.lstat(path)
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
        link = tmp_path / f"link to {path.name}"
        link.symlink_to(path)
        with pytest.raises(OSError, match="only a regular file is replaced"):
            write_atomic(link, b"x")
    assert temporaries(tmp_path) == []


def test_a_symbolic_link_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "later.bin")
    write_atomic(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "later.bin").read_bytes() == b"made"


@pytest.mark.parametrize("mode", [0o444, 0o640, 0o600, 0o755])
def test_the_target_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "kept"
    target.write_bytes(b"old")
    target.chmod(mode)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == mode


def test_an_error_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and temporaries(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "t", b"x")
    write_atomic(tmp_path / "made" / "deep" / "t", b"x", parents=True)
    assert (tmp_path / "made" / "deep" / "t").read_bytes() == b"x"


KILLED = textwrap.dedent(r"""
    import os, sys, time
    from tinytorch.core import files

    def stall(fd):  # the temporary file is written: stop here, as a SIGKILL would find it
        print("written", flush=True)
        time.sleep(60)

    files.os.fsync = stall
    files.write_atomic(sys.argv[1], b"new content")
""")


def test_a_temporary_left_by_sigkill_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "model.ttz"
    target.write_bytes(b"old content")
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(target)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.stdout.readline().strip() == "written"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = temporaries(tmp_path)
    assert len(left) == 1 and re.fullmatch(rf"\.model\.ttz\.tinytorch-{child.pid}-[0-9a-f]{{8}}\.tmp", left[0])
    assert target.read_bytes() == b"old content"
    other = tmp_path / f".other.ttz.tinytorch-{child.pid}-0123abcd.tmp"  # another target's: not touched
    other.write_bytes(b"")
    live = tmp_path / f".model.ttz.tinytorch-{os.getpid()}-0123abcd.tmp"  # a running process's: not touched
    live.write_bytes(b"")
    write_atomic(target, b"next")
    assert target.read_bytes() == b"next"
    assert temporaries(tmp_path) == sorted([other.name, live.name])


def test_checked_target_names_the_file_written(tmp_path):
    real = tmp_path / "r"
    link = tmp_path / "l"
    link.symlink_to(real)
    assert checked_target(link) == real.resolve()


def _savers(tmp_path):
    from tinytorch.compression import prune_and_quantize, save_compressed

    model = Sequential(Linear(4, 3))
    yield "save_compressed", lambda p: save_compressed(prune_and_quantize(model, 0.5), p)
    try:
        import safetensors  # noqa: F401

        from tinytorch.deploy import save_safetensors

        yield "save_safetensors", lambda p: save_safetensors(model, p)
    except ImportError:
        pass
    try:
        import onnx  # noqa: F401

        from tinytorch.deploy import export_onnx

        yield "export_onnx", lambda p: export_onnx(model, p, (1, 4))
    except ImportError:
        pass


def test_every_saver_refuses_a_fifo_follows_links_and_keeps_the_mode(tmp_path):
    names = []
    for name, save in _savers(tmp_path):
        names.append(name)
        fifo = tmp_path / f"{name}.fifo"
        os.mkfifo(fifo)
        with pytest.raises(OSError, match="exists and is a FIFO"):
            save(fifo)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        real, link = tmp_path / f"{name}.real", tmp_path / f"{name}.link"
        real.write_bytes(b"old")
        real.chmod(0o444)
        link.symlink_to(real)
        save(link)
        assert link.is_symlink() and real.read_bytes() != b"old" and stat.S_IMODE(real.stat().st_mode) == 0o444
    assert "save_compressed" in names and temporaries(tmp_path) == []


def test_one_place_renames_files_into_place():
    found = []
    for folder in ("tinytorch", "tito", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if "os.replace(" in path.read_text(encoding="utf-8"):
                found.append(path.relative_to(ROOT).as_posix())
    assert found == ["tinytorch/core/files.py"]


def test_loading_a_model_is_unaffected(tmp_path):
    from tinytorch.compression import load_compressed, prune_and_quantize, save_compressed

    model = prune_and_quantize(Sequential(Linear(6, 5)), 0.5)
    save_compressed(model, tmp_path / "m.ttz")
    x = np.ones((2, 6), np.float32)
    from tinytorch.core.tensor import Tensor

    np.testing.assert_array_equal(load_compressed(tmp_path / "m.ttz")(Tensor(x)).data, model(Tensor(x)).data)


def test_figures_go_through_the_writer(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from tinytorch.core.files import write_figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    size = write_figure(fig, tmp_path / "plot.png", dpi=50)
    data = (tmp_path / "plot.png").read_bytes()
    assert size == len(data) > 0 and data.startswith(b"\x89PNG\r\n\x1a\n")
    fifo = tmp_path / "plot.fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        write_figure(fig, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_no_file_is_written_past_the_writer():
    """Plots and reports too: no savefig to a path, no write_text or write_bytes, in the package,
    tito or the benchmarks (a figure is rendered to bytes and handed to write_atomic)."""
    found = []
    for folder in ("tinytorch", "tito", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                bypass = ".write_text(" in line or ".write_bytes(" in line or (
                    ".savefig(" in line and "format=" not in line)
                if bypass and not line.lstrip().startswith("#"):
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{number}")
    assert found == [], found
