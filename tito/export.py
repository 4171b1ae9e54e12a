"""`tito export`: percent-format module sources -> the `tinytorch` package, through nbdev.

jupytext reads the `*_dev.py` file in memory, and nbdev's own exporter writes the
`#| export` cells. Nothing is written unless every source compiles, and each package
file is replaced atomically, so a failed export never leaves a half-written package.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import keyword
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito.project import ModuleInfo, TitoError, read_source, write_atomic


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


_CELL = re.compile(r"^# %%(.*)$")
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(default_exp|exporti|exports|export)(?=\s|$)(.*)$")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_targets(path: Path, source: str, root: Path) -> None:
    """Refuse any export directive whose target is not a dotted module path inside `tinytorch/`.

    nbdev turns `#| default_exp a.b` into `tinytorch/a/b.py` and would as readily turn
    `../../evil` into a file outside the project: every target is checked first.
    """
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    code = True
    for number, line in enumerate(source.splitlines(), 1):
        cell = _CELL.match(line)
        if cell:
            code = "[markdown]" not in cell.group(1) and "[raw]" not in cell.group(1)
            continue
        directive = _DIRECTIVE.match(line) if code else None
        if not directive:
            continue
        name, target = directive.group(1), directive.group(2).strip()
        if not target and name != "default_exp":
            continue  # a plain '#| export' goes to the default module
        if not _MODULE_PATH.fullmatch(target) or any(keyword.iskeyword(part) for part in target.split(".")):
            raise TitoError(f"{rel}:{number}: '{line.strip()}' exports to {target!r}, which is not a dotted "
                            f"module path inside tinytorch/ (like compression.container); nothing was exported")
        if "__init__" in target.split("."):  # the packages' __init__ files are written by hand
            raise TitoError(f"{rel}:{number}: '{line.strip()}' would overwrite the hand-written "
                            f"tinytorch/{target.replace('.', '/')}.py; export to a module of its own "
                            f"(like compression.container); nothing was exported")


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


def _render_source(root: Path, path: Path, source: str) -> dict[Path, str]:
    """The package files one percent-format source exports, as text."""
    import jupytext
    from fastcore.nbio import dict2nb
    from nbdev.export import ExportModuleProc
    from nbdev.maker import ModuleMaker
    from nbdev.process import NBProcessor

    _compile_or_explain(path, source, root)
    check_targets(path, source, root)
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
        names = {default if target == "#" else target for target in exporter.modules}
        for name in sorted(names):  # what nbdev read, checked again before it writes
            if not isinstance(name, str) or not _MODULE_PATH.fullmatch(name):
                raise TitoError(f"{path.relative_to(root)}: exports to {name!r}, which is not a dotted module "
                                f"path inside tinytorch/; nothing was exported")
        for target, cells in exporter.modules.items():
            if not any(c.cell_type == "code" for c in cells):
                continue
            name = default if target == "#" else target
            maker = ModuleMaker(dest=lib, name=name, nb_path=fake_src, is_new=True)
            # NOTE: nbdev makes the imports relative only in `#| export` cells (the ones
            # listed in `__all__`); an `#| exporti` cell would keep `from tinytorch...`.
            listed = {id(cell) for cell in exporter.in_all[target]}
            for cell in cells:
                if id(cell) not in listed:
                    cell.import2relative(os.path.relpath(maker.fname.parent, lib.parent))
            maker.make(cells, exporter.in_all[target], lib_path=lib)
        return {p.relative_to(out): _hoist_docstring(p.read_text(encoding="utf-8")) for p in sorted(lib.rglob("*.py"))}


def _hoist_docstring(text: str) -> str:
    """Make a bare string that opens a file's first exported cell the generated file's docstring.

    nbdev gives a docstring only to a source's `default_exp` file (from the lesson's title
    cell); every other file starts with `__all__`. A `\"\"\"...\"\"\"` line that opens the first
    cell exported to a file (after any `from __future__` import) is moved to its top.
    """
    tree = ast.parse(text)
    if ast.get_docstring(tree) is not None:
        return text
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines = text.splitlines(keepends=True)
            doc = "".join(lines[node.lineno - 1:node.end_lineno]).strip()
            return doc + "\n\n" + "".join(lines[:node.lineno - 1] + lines[node.end_lineno:])
        return text
    return text


def render(module: ModuleInfo, source: str | None = None) -> ExportResult:
    """What exporting `module` would write, as text, without touching the package.

    `source` replaces the lesson's text (a student version, say); companion sources are
    read from disk. Two sources may not write the same package file.
    """
    root = module.root
    files: dict[Path, str] = {}
    owner: dict[Path, Path] = {}
    for path in module.sources:
        text = source if (path == module.dev_file and source is not None) else read_source(path, root)
        for rel, generated in _render_source(root, path, text).items():
            if rel in owner:
                raise TitoError(f"{path.relative_to(root)} and {owner[rel].relative_to(root)} both export "
                                f"{rel}; nothing was exported")
            owner[rel] = path
            files[rel] = generated
    return ExportResult(module, files)


_HEADER = re.compile(r"^# AUTOGENERATED! DO NOT EDIT! File to edit: (\S+?)\.?$", re.M)


def orphans(result: ExportResult) -> list[Path]:
    """Generated package files that name a source in the module's folder (one of its sources,
    or one since deleted) but that the module no longer exports (a cell moved elsewhere,
    a given file removed): left alone they would still import."""
    root = result.module.root
    folder = result.module.dev_file.parent.resolve()
    found = []
    for path in sorted((root / "tinytorch").rglob("*.py")):
        rel = path.relative_to(root)
        if rel in result.files:
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            m = _HEADER.match(f.readline())
        if m and (path.parent / m.group(1)).resolve().parent == folder:
            found.append(rel)
    return found


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
        stale += orphans(res)
    return stale


def write(results: list[ExportResult]) -> list[Path]:
    """Write every rendered file (only those that changed) and delete the module's orphans;
    returns the paths written or deleted."""
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
        for rel in orphans(res):
            (root / rel).unlink()
            written.append(rel)
    return written
