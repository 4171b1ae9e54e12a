"""`tito notebook <module>`: a lesson as a Jupyter notebook (`.ipynb`), written with jupytext.

The notebook is paired with the lesson (`jupytext.formats = "ipynb,py:percent"`): in
JupyterLab with jupytext installed, saving the notebook also saves the `.py` file that
`tito export` reads. A notebook already at the target path that differs from the new
one is first copied to `.tito/backups/<module>/` (or replaced as it is with `--force`),
so nothing a student wrote in it is lost.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from tito.project import ModuleInfo, TitoError, find_root, resolve_module, write_atomic


def notebook_text(module: ModuleInfo) -> str:
    """The lesson as `.ipynb` JSON text, paired with its `.py` source."""
    import jupytext

    from tito.export import _stable_ids  # the export's cell ids: the same lesson gives the same file

    nb = jupytext.read(module.dev_file, fmt="py:percent")
    _stable_ids(nb.cells)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    return jupytext.writes(nb, fmt="ipynb")


def _backup(module: ModuleInfo, path: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    backup = module.root / ".tito" / "backups" / module.dirname / f"{path.stem}.{stamp}.ipynb"
    write_atomic(backup, path.read_bytes())
    return backup


def write_notebook(module: ModuleInfo, out: str | Path | None = None, force: bool = False) -> tuple[Path, Path | None]:
    """Write `module`'s lesson as a notebook into `out` (default: beside the lesson).

    Returns:
        (the notebook's path, the backup of the notebook it replaced, or None).

    Raises:
        TitoError: `out` is not a folder, or the notebook cannot be written.
    """
    folder = Path(out) if out else module.dev_file.parent
    if folder.exists() and not folder.is_dir():
        raise TitoError(f"--out {folder} is a file; give a folder")
    path = folder / f"{module.dev_file.stem}.ipynb"
    text = notebook_text(module).encode("utf-8")
    backup = None
    if path.is_file() and path.read_bytes() != text and not force:
        backup = _backup(module, path)
    try:
        write_atomic(path, text)
    except OSError as err:
        raise TitoError(f"cannot write {path}: {err.strerror or err}") from None
    return path, backup


def _cmd(args) -> int:
    module = resolve_module(find_root(), args.module)
    path, backup = write_notebook(module, args.out, args.force)
    print(f"wrote {path}")
    if backup:
        print(f"  the notebook that was there differed: saved as {backup}")
    print(f"  open it with: jupyter lab {path}")
    return 0


def register(subparsers) -> None:
    """Add `tito notebook` to the `tito` command."""
    p = subparsers.add_parser("notebook", help="write a lesson as a Jupyter notebook (.ipynb)")
    p.add_argument("module", help="16_compression, 16 or compression")
    p.add_argument("--out", help="folder to write into (default: beside the lesson)")
    p.add_argument("--force", action="store_true", help="replace a differing notebook without a backup")
    p.set_defaults(func=_cmd)
