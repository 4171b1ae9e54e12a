"""The student workflow: `tito module start|reset|backups|status`, `tito release`, `tito grade`.

A student turns a module's dev file into the student version (solutions replaced by
stubs), fills the stubs in over days, exports and tests. Whatever a command is about
to overwrite is first copied to `.tito/backups/<module>/` in the project root, and the
full version is kept in `.tito/full/` so `reset` restores it byte for byte. Every
file is written atomically: a crash leaves the old file or the new one, never half.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito import stubs
from tito.backups import note
from tito.project import ModuleInfo, TitoError, all_modules, find_root, read_source, resolve_module, write_atomic

STATE_DIR = ".tito"


# ----------------------------------------------------------------------------- files


def _rel(module: ModuleInfo, path: Path) -> str:
    return str(path.relative_to(module.root)) if path.is_relative_to(module.root) else str(path)


def _git_head(module: ModuleInfo) -> bytes | None:
    """The committed dev file, when the project is a git checkout that has one."""
    rel = module.dev_file.relative_to(module.root).as_posix()
    try:
        proc = subprocess.run(["git", "show", f"HEAD:./{rel}"], cwd=module.root, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass
class Backup:
    """One saved copy of a dev file."""

    id: int
    path: Path
    time: str
    size: int
    version: str
    reason: str
    sha256: str


class Store:
    """What tito keeps for one module under `.tito/`: the full version and the backups."""

    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self.base = module.root / STATE_DIR
        self.backup_dir = self.base / "backups" / module.dirname
        self.full_path = self.base / "full" / f"{module.dirname}.py"

    # -- the full version

    def full_bytes(self) -> bytes | None:
        """The full version: the one kept at `start`, else the committed one if it has solutions."""
        if self.full_path.is_file():
            return self.full_path.read_bytes()
        committed = _git_head(self.module)
        if committed is not None and stubs.has_markers(committed.decode("utf-8", "replace")):
            return committed
        return None

    def full_text(self) -> str | None:
        """The full version's text: the working copy if it has solutions, else `full_bytes()`."""
        current = read_source(self.module.dev_file, self.module.root)
        if stubs.has_markers(current):
            return current
        data = self.full_bytes()
        return data.decode("utf-8") if data is not None else None

    def keep_full(self, data: bytes) -> None:
        old = self.full_path.read_bytes() if self.full_path.is_file() else None
        if old == data:
            return
        if old is not None:
            self.backup(old, "the full version kept before")
        write_atomic(self.full_path, data)

    # -- backups

    def backups(self) -> list[Backup]:
        found = []
        if not self.backup_dir.is_dir():
            return found
        for path in self.backup_dir.glob("*.py"):
            if not path.stem.isdigit():
                continue
            meta_path = path.with_suffix(".json")
            meta = {}
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            data = path.read_bytes()
            stat = path.stat()
            found.append(Backup(
                id=int(path.stem), path=path,
                time=meta.get("time") or dt.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds"),
                size=len(data),
                version=meta.get("version")
                or version_of(data.decode("utf-8", "replace"), self.full_bytes(), detail=True),
                reason=meta.get("reason", ""),
                sha256=meta.get("sha256") or hashlib.sha256(data).hexdigest(),
            ))
        return sorted(found, key=lambda b: b.id)

    def backup(self, data: bytes, reason: str) -> tuple[Backup, bool]:
        """Save `data` as a new backup (or find the identical one); returns it and whether it is new."""
        digest = hashlib.sha256(data).hexdigest()
        existing = self.backups()
        for b in existing:
            if b.sha256 == digest:
                return b, False
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        number = max((b.id for b in existing), default=0) + 1
        fd, tmp = tempfile.mkstemp(dir=self.backup_dir, prefix=".backup.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            # NOTE: a hard link never replaces an existing file, so two tito processes
            # backing up at once cannot overwrite each other's copy.
            while True:
                target = self.backup_dir / f"{number}.py"
                try:
                    os.link(tmp, target)
                    break
                except FileExistsError:
                    number += 1
                except OSError:  # a file system without hard links
                    if target.exists():
                        number += 1
                        continue
                    write_atomic(target, data)
                    break
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        now = dt.datetime.now().isoformat(timespec="seconds")
        version = version_of(data.decode("utf-8", "replace"), self.full_bytes(), detail=True)
        meta = {"id": number, "time": now, "size": len(data), "version": version,
                "reason": reason, "sha256": digest, "file": _rel(self.module, self.module.dev_file)}
        write_atomic(target.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
        return Backup(number, target, now, len(data), version, reason, digest), True

    def find_backup(self, spec: str) -> Backup:
        found = self.backups()
        if not found:
            raise TitoError(f"{self.module.dirname} has no backups yet")
        if spec == "latest":
            return found[-1]
        for b in found:
            if spec.lstrip("#") == str(b.id):
                return b
        ids = ", ".join(str(b.id) for b in found)
        raise TitoError(f"no backup {spec!r} of {self.module.dirname}; available: {ids} (or 'latest')")


def version_of(text: str, full: bytes | None = None, detail: bool = False) -> str:
    """Which version `text` is: full, student (with the tasks left), or one without tasks."""
    if stubs.has_markers(text):
        return "full"
    left = sorted(set(stubs.stubs_left(text)))
    if left:
        return f"student, {len(left)} task(s) left" if detail else "student"
    if full is not None and stubs.has_markers(full.decode("utf-8", "replace")):
        return "student, all tasks done"
    return "no tasks"


def _backup_note(backup: Backup, new: bool) -> str:
    saved = "saved as" if new else "already saved as"
    return f"{saved} backup {backup.id} ({_rel_path(backup.path)})"


def _rel_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# ----------------------------------------------------------------------------- commands


def start(module: ModuleInfo) -> int:
    """Turn the working copy into the student version, keeping the full one and a backup."""
    store = Store(module)
    rel = _rel(module, module.dev_file)
    raw = module.dev_file.read_bytes()
    text = read_source(module.dev_file, module.root)
    if not stubs.has_markers(text):
        left = sorted(set(stubs.stubs_left(text)))
        if left or store.full_path.is_file():
            print(f"{rel} is already the student version ({len(left)} task(s) left); nothing changed")
        else:
            print(f"{rel} has no '{stubs.BEGIN}' markers, so there is nothing to stub; nothing changed")
        return 0
    student = stubs.make_student(text, rel)  # refuses bad markers before anything is written
    problems = check_student(text, student)
    if problems:
        raise TitoError(f"{rel}: the student version would be wrong; nothing was changed\n  "
                        + "\n  ".join(problems))
    backup, new = store.backup(raw, "before start")
    store.keep_full(raw)
    write_atomic(module.dev_file, student.encode("utf-8"))
    tasks = stubs.task_ids(text)
    print(f"{rel}: student version written, {len(tasks)} task(s) to implement: {', '.join(tasks)}")
    print(f"  the full version: {_backup_note(backup, new)}; 'tito module reset {module.number}' restores it")
    first = f" --task {tasks[0]}" if tasks else ""
    print(f"  next: edit the file, then 'tito export {module.number}' and 'tito test {module.number}{first}'")
    return 0


def reset(module: ModuleInfo, backup_id: str | None = None) -> int:
    """Restore the full version (or a backup), after backing up what is there now."""
    store = Store(module)
    rel = _rel(module, module.dev_file)
    current = module.dev_file.read_bytes() if module.dev_file.exists() else None
    if backup_id is not None:
        chosen = store.find_backup(backup_id)
        target, label = chosen.path.read_bytes(), f"backup {chosen.id}"
    else:
        target, label = store.full_bytes(), "the full version"
        if target is None:
            if current is not None and stubs.has_markers(current.decode("utf-8", "replace")):
                print(f"{rel} is already the full version (it has its solutions); nothing changed")
                return 0
            raise TitoError(f"no full version of {module.dirname} is kept ({_rel(module, store.full_path)}) "
                            f"or committed; choose a backup: 'tito module backups {module.number}', "
                            f"then 'tito module reset {module.number} --backup ID'")
    if current == target:
        print(f"{rel} is already {label}; nothing changed")
        return 0
    if current is not None:
        backup, new = store.backup(current, f"before reset to {label}")
        print(f"{rel}: what was there is {_backup_note(backup, new)}")
    write_atomic(module.dev_file, target)
    print(f"{rel}: restored {label}; run 'tito export {module.number}' to update the package")
    return 0


def check_student(full: str, student: str, path: str = "<student version>") -> list[str]:
    """What is wrong with a student version: solution text left, test cells changed, no compile."""
    problems = []
    try:
        compile(student, path, "exec")
    except SyntaxError as err:
        problems.append(f"line {err.lineno}: does not compile: {err.msg}")
    leaks = stubs.solution_leaks(full, student)
    problems += [f"solution text left in: {line!r}" for line in leaks[:10]]
    full_lines = full.splitlines()
    student_text = "\n".join(student.splitlines())
    for cell in stubs.find_test_cells(full):
        body = "\n".join(full_lines[cell.start - 1: cell.end]).rstrip()
        if body not in student_text:
            problems.append(f"the test cell at line {cell.start} is not kept unchanged")
    return problems


def _table(title: str, columns: list[str]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    return table


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def backups(module: ModuleInfo) -> int:
    """List the backups of one module."""
    store = Store(module)
    found = store.backups()
    console = _console()
    if not found:
        console.print(f"{module.dirname} has no backups yet "
                      f"(one is made before any command overwrites the file)")
    else:
        table = _table(f"backups of {_rel(module, module.dev_file)}", ["id", "time", "size", "version", "saved"])
        for b in found:
            table.add_row(str(b.id), b.time.replace("T", " "), f"{b.size:,} B", b.version, b.reason)
        console.print(table)
        console.print(f"restore one with 'tito module reset {module.number} --backup ID' "
                      f"(what is there now is backed up first)")
    if store.full_path.is_file():
        console.print(f"full version kept at {_rel(module, store.full_path)}")
    return 0


def _export_state(module: ModuleInfo) -> str:
    from tito import export

    try:
        result = export.render(module)
    except TitoError as err:
        return "error: " + str(err).splitlines()[0]
    stale = export.differences([result])
    if not stale:
        return "in sync"
    if all(not (module.root / rel).exists() for rel in stale):
        return "not exported"
    return "stale"


def _test_state(module: ModuleInfo) -> str:
    from tito import testing

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        testing.run(module.root, [module], quiet=True)
    m = re.search(r"summary: (\d+) passed, (\d+) failed, (\d+) skipped", buffer.getvalue())
    if not m:
        return "could not run"
    passed, failed, skipped = map(int, m.groups())
    return (f"{passed} passed" + (f", {failed} FAILED" if failed else "")
            + (f", {skipped} skipped" if skipped else ""))


def status(modules: list[ModuleInfo], run_tests: bool = False) -> int:
    """A table: version, tasks done, export state (and test results) of each module."""
    columns = ["module", "version", "tasks done", "package"] + (["tests"] if run_tests else [])
    table = _table("modules", columns)
    for module in modules:
        store = Store(module)
        try:
            text = read_source(module.dev_file, module.root)
        except TitoError as err:
            table.add_row(module.dirname, "error: " + str(err).splitlines()[0], "-", "-", *(["-"] if run_tests else []))
            continue
        version = version_of(text, store.full_bytes())
        full = store.full_text()
        try:
            tasks = stubs.task_ids(full) if full is not None else []
        except TitoError:
            tasks, version = [], version + " (markers broken)"
        left = set(stubs.stubs_left(text))
        done = [t for t in tasks if t not in left]
        progress = f"{len(done)}/{len(tasks)}" if tasks else "-"
        row = [module.dirname, version, progress, _export_state(module)]
        if run_tests:
            row.append(_test_state(module))
        table.add_row(*row)
    console = _console()
    console.print(table)
    console.print("package: 'in sync' when tinytorch/ holds what the dev file exports, "
                  "'stale' when 'tito export' would change it")
    return 0


def release(modules: list[ModuleInfo], out: Path, force: bool = False) -> int:
    """Write the student versions (and ABOUT.md) of `modules` into `out/modules/NN_name/`."""
    from tito import export

    out = out.resolve()
    _outside_the_project(out, modules)
    if out.exists() and not out.is_dir():
        raise TitoError(f"--out must be a folder, got the file {out}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise TitoError(f"{out} is not empty; choose an empty folder or pass --force to write into it")
    planned: list[tuple[Path, bytes]] = []
    for module in modules:
        store = Store(module)
        rel = _rel(module, module.dev_file)
        full = store.full_text()
        if full is None:
            raise TitoError(f"{rel} is a student version and no full version is kept; nothing was written")
        student = stubs.make_student(full, rel)
        problems = check_student(full, student, rel)
        if problems:
            raise TitoError(f"{rel}: the student version would be wrong; nothing was written\n  "
                            + "\n  ".join(problems))
        export.render(module, source=student)  # students must be able to export it
        folder = out / "modules" / module.dirname
        planned.append((folder / module.dev_file.name, student.encode("utf-8")))
        planned += [(folder / given.name, given.read_bytes()) for given in module.given_files]
        about = module.dev_file.parent / "ABOUT.md"
        if about.is_file():
            planned.append((folder / "ABOUT.md", about.read_bytes()))
        else:
            print(f"warning: {module.dirname} has no ABOUT.md")
    for path, _ in planned:
        _outside_the_project(path, modules)  # through symbolic links too
    for path, data in planned:
        if path.is_file() and path.read_bytes() != data:  # another checkout's work: keep a copy there
            note(path, "before tito release wrote over it")
        write_atomic(path, data)
        print(f"wrote {_rel_path(path)}")
    print(f"released {len(modules)} module(s) into {_rel_path(out)}, no solution text in any")
    return 0


def _outside_the_project(path: Path, modules: list[ModuleInfo]) -> None:
    """Refuse a release folder (or file) that is the project, holds it, or lies among its
    working files: the release writes stubs, and over a working file they would replace
    what a student wrote, with no backup. `--force` does not lift this."""
    for root in {m.root.resolve() for m in modules}:
        real = path.resolve()
        if real == root or root.is_relative_to(real):
            raise TitoError(f"--out {path} is {'the project' if real == root else 'a folder holding the project'} "
                            f"({root}): releasing there would overwrite working files with stubs; "
                            f"choose a folder outside the project; nothing was written")
        for kept in ("modules", "tinytorch", "tito", "tests", STATE_DIR):
            if real.is_relative_to(root / kept):
                raise TitoError(f"--out {path} lies among the project's working files ({root / kept}); "
                                f"choose a folder outside {root / kept}; nothing was written")


def grade_module(module: ModuleInfo, as_json: bool = False, inline_only: bool = False) -> int:
    """Run the graded test cells (and the tasks' pytest tests) and print the points each earned."""
    from tito import explain, grading
    from tito.testing import _env

    cells = grading.grade(module, env=_env(module.root), pytest_suite=not inline_only)
    earned = sum(c.points for c in cells if c.passed)
    total = sum(c.points for c in cells)
    if as_json:
        print(json.dumps({"module": module.dirname, "score": earned, "max": total,
                          "cells": [{"grade_id": c.grade_id, "points": c.points, "passed": c.passed,
                                     "tasks": c.tasks, "message": c.message} for c in cells]}, indent=2))
        return 0
    console = _console()
    if not cells:
        console.print(f"{module.dirname} has no graded test cells (nbgrader=" + '{"grade": true, ...}' + ")")
        return 0
    table = _table(f"grade of {_rel(module, module.dev_file)}", ["test cell", "task", "points", "result"])
    for c in cells:
        result = "passed" if c.passed else explain.headline(c.message)
        table.add_row(c.grade_id, ", ".join(c.tasks) or "-", f"{c.points:g}/{c.points:g}" if c.passed
                      else f"0/{c.points:g}", result)
    console.print(table)
    console.print(f"score: {earned:g} / {total:g}")
    return 0


# ----------------------------------------------------------------------------- argparse


def _one(args, lesson_missing_ok: bool = False) -> ModuleInfo:
    return resolve_module(find_root(), args.module, lesson_missing_ok)


def _many(args) -> list[ModuleInfo]:
    root = find_root()
    if getattr(args, "all", False) or not args.modules:
        return all_modules(root)
    return [resolve_module(root, spec) for spec in args.modules]


def _cmd_release(args) -> int:
    root = find_root()
    if args.all == bool(args.module):
        raise TitoError("name one module or pass --all")
    modules = all_modules(root) if args.all else [resolve_module(root, args.module)]
    return release(modules, Path(args.out), force=args.force)


def register(subparsers) -> None:
    """Add `module`, `release` and `grade` to the `tito` command."""
    p = subparsers.add_parser("module", help="switch a module between the student and the full version")
    sub = p.add_subparsers(dest="action", required=True)

    q = sub.add_parser("start", help="replace every solution with a stub (the full version is kept)")
    q.add_argument("module", help="16_compression, 16 or compression")
    q.set_defaults(func=lambda a: start(_one(a)))

    q = sub.add_parser("reset", help="restore the full version, or a backup (what is there is backed up first)")
    q.add_argument("module", help="16_compression, 16 or compression")
    q.add_argument("--backup", metavar="ID", help="restore this backup instead ('latest' for the newest)")
    q.set_defaults(func=lambda a: reset(_one(a, lesson_missing_ok=True), a.backup))

    q = sub.add_parser("backups", help="list the saved copies of a module's dev file")
    q.add_argument("module", help="16_compression, 16 or compression")
    q.set_defaults(func=lambda a: backups(_one(a)))

    q = sub.add_parser("status", help="a table of every module: version, tasks done, export state")
    q.add_argument("modules", nargs="*", help="only these modules (default: all)")
    q.add_argument("--run-tests", action="store_true", help="also run each module's tests (slow)")
    q.set_defaults(func=lambda a: status(_many(a), run_tests=a.run_tests))

    p = subparsers.add_parser("release", help="write the student versions of modules for a course")
    p.add_argument("module", nargs="?", help="16_compression, 16 or compression")
    p.add_argument("--all", action="store_true", help="every module")
    p.add_argument("--out", required=True, help="an empty folder; files go to OUT/modules/NN_name/")
    p.add_argument("--force", action="store_true", help="write even if OUT is not empty")
    p.set_defaults(func=_cmd_release)

    p = subparsers.add_parser("grade", help="points earned by the graded test cells of a module whose "
                                            "tasks' pytest tests pass too")
    p.add_argument("module", help="16_compression, 16 or compression")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--inline-only", action="store_true",
                   help="grade the lesson's own test cells only, without the pytest suite (faster)")
    p.set_defaults(func=lambda a: grade_module(_one(a), as_json=a.json, inline_only=a.inline_only))
