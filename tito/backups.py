"""Backups of project files that a tito command is about to overwrite with something else.

A lesson file (`modules/NN_name/name_dev.py`) goes to its module's backups, where
`tito module backups` lists it and `tito module reset NN --backup ID` restores it; any
other file of a project goes to `.tito/backups/files/`, under its path and the time.
The project is the one the file belongs to (found from the file, not from the current
folder), so writing into another checkout backs up that checkout's work.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

from tito.project import ModuleInfo, TitoError, find_root, write_atomic


def _module_of(root: Path, target: Path) -> ModuleInfo | None:
    """The module whose lesson file `target` is, if it is one."""
    parts = target.relative_to(root).parts
    if len(parts) == 3 and parts[0] == "modules":
        number, _, name = parts[1].partition("_")
        module = ModuleInfo(number, name, root)
        if number.isdigit() and module.dev_file == target:
            return module
    return None


def protect(path: str | os.PathLike, reason: str) -> Path | None:
    """Back up the file at `path` (symlinks followed) when it exists inside a TinyTorch project
    and holds something; returns where the copy is, or None when there was nothing to keep."""
    target = Path(os.path.realpath(path))
    if not target.is_file():
        return None
    try:
        root = find_root(target.parent)
    except TitoError:
        return None
    data = target.read_bytes()
    if not data:
        return None
    from tito.workflow import STATE_DIR, Store

    module = _module_of(root, target)
    if module is not None:
        backup, _ = Store(module).backup(data, reason)
        return backup.path
    folder = root / STATE_DIR / "backups" / "files"
    digest = hashlib.sha256(data).hexdigest()[:12]
    flat = "__".join(target.relative_to(root).parts)
    for old in folder.glob(f"*-{digest}-{flat}") if folder.is_dir() else ():
        return old  # the same bytes are kept already
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    copy = folder / f"{stamp}-{digest}-{flat}"
    write_atomic(copy, data)
    return copy


def note(path: str | os.PathLike, reason: str) -> None:
    """`protect`, saying where the copy went."""
    copy = protect(path, reason)
    if copy is not None:
        print(f"{path} existed: a copy is kept in {copy}")
