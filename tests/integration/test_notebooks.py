"""Lessons as Jupyter notebooks: `tito notebook` writes them, a real IPython kernel runs them.

Each lesson named below is written as `.ipynb` by `tito notebook`, then executed cell
by cell with nbclient in an ipykernel kernel, as JupyterLab would. Every cell must run,
the inline tests must pass (`test_module()` prints "all inline tests passed"), and the
plots must come out as image outputs. Lessons save their plots as PNG files in
TINYTORCH_PLOTS; a cell put in front of the lesson (in memory, not in the file) shows
each new PNG after the cell that wrote it, as a student running the notebook sees it.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NotebookClient = pytest.importorskip("nbclient").NotebookClient
pytest.importorskip("ipykernel")

from tito.notebook import write_notebook
from tito.project import resolve_module

ROOT = Path(__file__).resolve().parents[2]
# Any lesson that runs as a script runs here; these two draw plots.
LESSONS = ["16_compression", "20_deployment"]

SHOW_PLOTS = '''\
import os, pathlib
from IPython import get_ipython
from IPython.display import Image, display

_plots_shown = set()


def _show_new_plots(result=None):
    for png in sorted(pathlib.Path(os.environ["TINYTORCH_PLOTS"]).rglob("*.png")):
        if png not in _plots_shown:
            _plots_shown.add(png)
            display(Image(filename=str(png)))


get_ipython().events.register("post_run_cell", _show_new_plots)
'''


@pytest.fixture
def kernel_env(monkeypatch, tmp_path):
    """The environment the kernel inherits: quick lessons, no GUI backend, plots in tmp_path."""
    plots = tmp_path / "plots"
    plots.mkdir()
    monkeypatch.setenv("TINYTORCH_QUICK", "1")
    monkeypatch.setenv("TINYTORCH_QUIET", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TINYTORCH_PLOTS", str(plots))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    return plots


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == kind]


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_as_a_notebook_in_a_kernel(lesson, kernel_env, tmp_path):
    module = resolve_module(ROOT, lesson)
    path, _ = write_notebook(module, tmp_path)
    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SHOW_PLOTS))
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    ran = [c for c in nb.cells[1:] if c.cell_type == "code" and c.get("execution_count")]
    assert len(ran) == code_cells
    assert not outputs(nb, "error")
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    assert f"Module {module.number}: all inline tests passed" in text, text[-2000:]
    images = [o for o in outputs(nb, "display_data") if "image/png" in o.get("data", {})]
    assert images, "no plot came out as an image output"
    assert len(images) == len(list(kernel_env.rglob("*.png")))


def test_tito_notebook_writes_a_paired_notebook_and_keeps_a_backup(tmp_path, monkeypatch):
    from tito.cli import main

    monkeypatch.chdir(ROOT)
    module = resolve_module(ROOT, "20")
    assert main(["notebook", "20", "--out", str(tmp_path)]) == 0
    path = tmp_path / "deployment_dev.ipynb"
    nb = json.loads(path.read_text())
    assert nb["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert any("def torch_state_dict" in s for s in sources)
    assert sum(c["cell_type"] == "markdown" for c in nb["cells"]) > 5
    # a student's notebook that differs is backed up before it is replaced; --force replaces it as it is
    path.write_text(path.read_text().replace("Module 20: Deployment", "Module 20: my notes"))
    mine = path.read_bytes()
    written, backup = write_notebook(module, tmp_path)
    assert written == path and backup is not None and backup.read_bytes() == mine
    assert path.read_bytes() != mine
    backup.unlink()
    _, again = write_notebook(module, tmp_path)  # unchanged: nothing to back up
    assert again is None
    path.write_bytes(mine)
    assert write_notebook(module, tmp_path, force=True)[1] is None
    (tmp_path / "file").write_text("x")
    assert main(["notebook", "20", "--out", str(tmp_path / "file")]) == 2
