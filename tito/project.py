"""Finding the project and its modules."""
from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

_MODULE_DIR = re.compile(r"^(\d\d)_([a-z0-9_]+)$")


class TitoError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass(frozen=True)
class ModuleInfo:
    """One course module: `modules/16_compression/compression_dev.py` and friends."""

    number: str  # "16"
    name: str  # "compression"
    root: Path  # the project root

    @property
    def dirname(self) -> str:
        return f"{self.number}_{self.name}"

    @property
    def dev_file(self) -> Path:
        return self.root / "modules" / self.dirname / f"{self.name}_dev.py"

    @property
    def given_files(self) -> list[Path]:
        """Companion sources beside the lesson (`*_given.py`): code a student uses but need
        not write (file formats, bookkeeping), exported like the lesson, with no tasks."""
        return sorted(self.dev_file.parent.glob("*_given.py"))

    @property
    def sources(self) -> list[Path]:
        """Every source `tito export` reads for this module: the lesson, then its companions."""
        return [self.dev_file, *self.given_files]

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests" / self.dirname


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding `pyproject.toml` and `modules/`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "modules").is_dir():
            return folder
    raise TitoError(f"no TinyTorch project (pyproject.toml + modules/) at or above {here}")


def all_modules(root: Path, lesson_missing_ok: bool = False) -> list[ModuleInfo]:
    """Every module folder that has its `<name>_dev.py` (or any, with `lesson_missing_ok`), in course order."""
    found = []
    for d in sorted((root / "modules").iterdir()):
        m = _MODULE_DIR.match(d.name)
        if m and d.is_dir() and (lesson_missing_ok or (d / f"{m.group(2)}_dev.py").is_file()):
            found.append(ModuleInfo(m.group(1), m.group(2), root))
    return found


def resolve_module(root: Path, spec: str, lesson_missing_ok: bool = False) -> ModuleInfo:
    """Accept `16_compression`, `16` or `compression` (a module whose lesson file was deleted
    too, with `lesson_missing_ok`: `tito module reset` brings it back)."""
    modules = all_modules(root, lesson_missing_ok)
    for mod in modules:
        if spec in (mod.dirname, mod.number, mod.name, mod.number.lstrip("0")):
            return mod
    names = ", ".join(m.dirname for m in modules) or "(none)"
    raise TitoError(f"unknown module {spec!r}; available: {names}")


def read_source(path: Path, root: Path | None = None) -> str:
    """The text of a source file, or a TitoError naming the file, byte and line that are not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        shown = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
        line = data.count(b"\n", 0, err.start) + 1
        raise TitoError(f"{shown}:{line}: not valid UTF-8 at byte offset {err.start} "
                        f"({data[err.start:err.start + 4]!r}); save the file as UTF-8") from None


@functools.cache
def _writer():
    """`tinytorch/core/files.py`, loaded on its own (standard library only): tito writes even
    when the student's code in `tinytorch.core` fails to import; before the first export,
    its source (a percent-format file is Python too)."""
    top = Path(__file__).resolve().parent.parent
    path = top / "tinytorch" / "core" / "files.py"
    if not path.is_file():
        path = top / "modules" / "01_tensor" / "files_given.py"
    spec = importlib.util.spec_from_file_location("tinytorch_core_files", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step, creating its folders: TinyTorch's one writer
    (`tinytorch.core.files.write_atomic`: regular files only, symlinks followed, mode kept)."""
    _writer().write_atomic(path, data, parents=True)


def checked_target(path: Path) -> Path:
    """The regular file writing to `path` would replace (symlinks followed); OSError otherwise."""
    return _writer().checked_target(path)
