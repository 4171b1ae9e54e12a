"""`tito export`: percent-format module sources -> the `tinytorch` package, through nbdev.

jupytext reads the `*_dev.py` file in memory, and nbdev's own exporter writes the
`#| export` cells. Nothing is written unless every source compiles, and each package
file is replaced atomically, so a failed export never leaves a half-written package.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito.project import ModuleInfo, TitoError, write_atomic


@dataclass
class ExportResult:
    module: ModuleInfo
    files: dict[Path, str]  # package-relative path -> generated text


def _compile_or_explain(path: Path, source: str, root: Path) -> None:
    try:
        compile(source, str(path), "exec")
    except SyntaxError as err:
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        line = (err.text or "").rstrip("\n")
        raise TitoError(f"{rel}:{err.lineno}: {err.msg}\n    {line}\nnothing was exported") from None


def _stable_ids(cells) -> None:
    # NOTE: jupytext draws random cell ids on every read; nbdev writes them into the
    # generated file. Ids derived from the source keep repeated exports byte-identical.
    seen: dict[str, int] = {}
    for cell in cells:
        digest = hashlib.sha1((cell.cell_type + "\0" + cell.source).encode()).hexdigest()[:8]
        n = seen.get(digest, 0)
        seen[digest] = n + 1
        cell["id"] = digest if n == 0 else f"{digest[:6]}{n:02x}"


@contextlib.contextmanager
def _cwd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def render(module: ModuleInfo, source: str | None = None) -> ExportResult:
    """What exporting `module` would write, as text, without touching the package."""
    import jupytext
    from fastcore.nbio import dict2nb
    from nbdev.export import ExportModuleProc
    from nbdev.maker import ModuleMaker
    from nbdev.process import NBProcessor

    root = module.root
    path = module.dev_file
    if source is None:
        source = path.read_text(encoding="utf-8")
    _compile_or_explain(path, source, root)
    notebook = jupytext.reads(source, fmt="py:percent")
    _stable_ids(notebook.cells)
    nb = dict2nb(dict(notebook))

    with tempfile.TemporaryDirectory(prefix="tito-export-") as tmp, _cwd(root):
        out = Path(tmp)
        lib = out / "tinytorch"
        # The fake source path keeps the project's layout, so the generated header
        # names the file students edit, relative to the generated file.
        fake_src = out / path.relative_to(root)
        exporter = ExportModuleProc()
        NBProcessor(nb=nb, procs=[exporter]).process()
        default = getattr(exporter, "default_exp", None)
        if not default:
            raise TitoError(f"{path.relative_to(root)}: no '#| default_exp' cell; nothing was exported")
        for target, cells in exporter.modules.items():
            if not any(c.cell_type == "code" for c in cells):
                continue
            name = default if target == "#" else target
            maker = ModuleMaker(dest=lib, name=name, nb_path=fake_src, is_new=True)
            maker.make(cells, exporter.in_all[target], lib_path=lib)
        files = {p.relative_to(out): p.read_text(encoding="utf-8") for p in sorted(lib.rglob("*.py"))}
    return ExportResult(module, files)


def _package_init(root: Path, rel: Path) -> list[Path]:
    """Package folders the generated file needs that have no `__init__.py` yet."""
    missing = []
    folder = (root / rel).parent
    while folder != root:
        if not (folder / "__init__.py").exists():
            missing.append(folder / "__init__.py")
        folder = folder.parent
    return missing


def differences(results: list[ExportResult]) -> list[Path]:
    """Package files whose text differs from what the sources export."""
    stale = []
    for res in results:
        root = res.module.root
        for rel, text in res.files.items():
            target = root / rel
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(rel)
    return stale


def write(results: list[ExportResult]) -> list[Path]:
    """Write every rendered file (only those that changed); returns what was written."""
    written = []
    for res in results:
        root = res.module.root
        for rel, text in res.files.items():
            target = root / rel
            for init in _package_init(root, rel):
                doc = f'"""{init.parent.name}: generated from modules/; see its __init__ for the public names."""\n'
                write_atomic(init, doc.encode("utf-8"))
            if target.exists() and target.read_text(encoding="utf-8") == text:
                continue
            write_atomic(target, text.encode("utf-8"))
            written.append(rel)
    return written
