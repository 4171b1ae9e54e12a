"""What tito writes: only regular files, never over project work without a copy, and the
command lines that used to end in a traceback (issue 25: S9, M1, M3, M9)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tinytorch.compression import prune_and_quantize, save_compressed
from tinytorch.core.layers import Linear, Sequential

from .conftest import TOY, Project, make_project, output


def one_line(result, *words: str) -> None:
    assert result.returncode == 2, output(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tito: "), output(result)
    assert "Traceback" not in output(result)
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def folder(tmp_path) -> Project:
    """A folder holding one saved model, `m.ttz` (a Linear(8, 4) pruned and quantized)."""
    save_compressed(prune_and_quantize(Sequential(Linear(8, 4)), 0.5), tmp_path / "m.ttz")
    return Project(tmp_path)


@pytest.mark.parametrize("to, package", [("onnx", "onnx"), ("safetensors", "safetensors"), ("torch", "torch")])
def test_deploy_never_replaces_a_fifo(folder, to, package):
    pytest.importorskip(package)
    fifo = folder.root / "out.fifo"
    os.mkfifo(fifo)
    one_line(folder.tito("deploy", "m.ttz", "--to", to, "--out", "out.fifo"), "out.fifo", "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in folder.root.iterdir()) == ["m.ttz", "out.fifo"]


def test_deploy_input_shapes_and_a_folder_as_file_are_one_line(folder):
    pytest.importorskip("onnx")
    one_line(folder.tito("deploy", "m.ttz", "--to", "onnx", "--input-shape", "8"), "would get a 1-D input", "2-D")
    one_line(folder.tito("deploy", "m.ttz", "--to", "onnx", "--input-shape", "100000000,8"),
             "100000000,8", "at most 16,777,216 values")
    one_line(folder.tito("deploy", "m.ttz", "--to", "onnx", "--input-shape", "0,8"), "sizes >= 1")
    (folder.root / "dir.ttz").mkdir()
    one_line(folder.tito("deploy", "dir.ttz", "--to", "onnx"), "dir.ttz is a folder")
    assert sorted(p.name for p in folder.root.iterdir()) == ["dir.ttz", "m.ttz"]
    assert folder.tito("deploy", "m.ttz", "--to", "onnx", "--input-shape", "2,8").returncode == 0


def test_deploy_over_project_files_keeps_a_copy_first(project: Project):
    pytest.importorskip("safetensors")
    save_compressed(prune_and_quantize(Sequential(Linear(8, 4)), 0.5), project.root / "m.ttz")
    lesson = project.dev_file(TOY)
    given = project.root / "modules" / "16_compression" / "storage_given.py"
    before = {lesson: lesson.read_bytes(), given: given.read_bytes()}
    for target in (lesson, given):
        result = project.tito("deploy", "m.ttz", "--to", "safetensors", "--out", str(target))
        assert result.returncode == 0 and "a copy is kept in" in result.stdout, output(result)
    listed = project.tito("module", "backups", TOY)
    assert listed.returncode == 0 and "tito deploy" in listed.stdout, output(listed)
    assert (project.root / ".tito" / "backups" / TOY / "1.py").read_bytes() == before[lesson]
    copies = list((project.root / ".tito" / "backups" / "files").iterdir())
    assert len(copies) == 1 and copies[0].name.endswith("modules__16_compression__storage_given.py")
    assert copies[0].read_bytes() == before[given]


def test_bench_out_is_checked_and_backed_up_before_the_run(project: Project):
    from tito.bench import _checked_out
    from tito.project import TitoError

    one_line(project.tito("bench", "--quick", "--out", "missing/report.md"), "does not exist", "nothing was run")
    fifo = project.root / "report.fifo"
    os.mkfifo(fifo)
    one_line(project.tito("bench", "--quick", "--out", "report.fifo"), "is a FIFO", "nothing was run")
    lesson = project.dev_file(TOY)
    assert _checked_out(str(lesson)) == lesson.resolve()
    assert (project.root / ".tito" / "backups" / TOY / "1.py").read_bytes() == lesson.read_bytes()
    with pytest.raises(TitoError, match="is a folder"):
        _checked_out(str(project.root / "modules"))


def test_reset_brings_back_a_deleted_lesson(project: Project):
    lesson = project.dev_file(TOY)
    full = lesson.read_bytes()
    assert project.tito("module", "start", TOY).returncode == 0
    lesson.unlink()
    unknown = project.tito("test", TOY)
    assert unknown.returncode == 2
    result = project.tito("module", "reset", TOY)
    assert result.returncode == 0, output(result)
    assert lesson.read_bytes() == full


def test_an_unknown_task_is_named_not_run(project: Project):
    for task in ("99.9", "90.7"):
        one_line(project.tito("test", TOY, "--task", task), f"--task {task} is not a task", "90.1, 90.2")


def test_release_into_another_checkout_keeps_its_student_work(project: Project, tmp_path):
    other = make_project(tmp_path / "other")
    work = other.dev_file(TOY)
    work.write_text(work.read_text() + "\n# my own notes\n")
    mine = work.read_bytes()
    result = project.tito("release", TOY, "--out", str(other.root), "--force")
    assert result.returncode == 0, output(result)
    assert work.read_bytes() != mine
    assert (other.root / ".tito" / "backups" / TOY / "1.py").read_bytes() == mine


@pytest.mark.parametrize("target", ["__init__", "compression.__init__"])
def test_export_refuses_to_write_a_package_init(project: Project, target):
    init = project.root / "tinytorch" / Path(*target.split(".")).with_suffix(".py")
    before = init.read_bytes()
    bad = project.dev_file(TOY).parent / "bad_given.py"
    bad.write_text(f"# %%\n#| default_exp {target}\n\n# %%\n#| export\nX = 1\n")
    result = project.tito("export", TOY)
    assert result.returncode == 2 and "hand-written" in result.stderr, output(result)
    assert init.read_bytes() == before
