"""The student version of a module: every solution body becomes a `NotImplementedError` stub.

A solution is the code between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's
markers). Its task id and what to implement come from the docstring of the function
(or, failing that, the class) around it, which names the task: `Task 16.3: ...`.
Everything else in the file, markdown, signatures, docstrings and test cells, is kept
byte for byte. Markers that do not pair up are refused with their line numbers.
"""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from tito.project import TitoError

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_CELL = re.compile(r"^# %%(?P<rest>.*)$")
_TASK = re.compile(r"\bTasks?\s+(\d+\.\d+)")
# What `make_student` writes; `stubs_left` finds it again.
_STUB = re.compile(r"""^\s*raise NotImplementedError\(\s*["']Task (\d+\.\d+)\b""")


@dataclass
class Cell:
    """One `# %%` cell of a percent-format file (1-based, inclusive line numbers)."""

    start: int  # the `# %%` line (0 for the header before the first cell)
    end: int
    kind: str  # "code", "markdown" or "header"
    nbgrader: dict = field(default_factory=dict)

    @property
    def is_graded_test(self) -> bool:
        return bool(self.nbgrader.get("grade")) or bool(self.nbgrader.get("locked"))


@dataclass
class Solution:
    """One `### BEGIN SOLUTION ... ### END SOLUTION` block."""

    begin: int  # line of the BEGIN marker (1-based)
    end: int  # line of the END marker
    indent: str  # indentation the stub gets: the body's
    task: str | None  # "16.3"
    description: str  # what to implement, in the docstring's words
    where: str  # qualified name of the enclosing function, or "module level"

    @property
    def message(self) -> str:
        return f"Task {self.task}: {self.description}" if self.task else self.description

    def stub_line(self, newline: str = "\n") -> str:
        # json.dumps writes a double-quoted literal that is also valid Python.
        return f"{self.indent}raise NotImplementedError({json.dumps(self.message, ensure_ascii=False)}){newline}"


def _nbgrader(rest: str) -> dict:
    at = rest.find("nbgrader=")
    if at < 0:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(rest[at + len("nbgrader="):])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def split_cells(text: str) -> list[Cell]:
    """The cells of a percent-format file, with their line ranges and nbgrader metadata."""
    lines = text.splitlines()
    cells = [Cell(start=0, end=0, kind="header")]
    for number, line in enumerate(lines, start=1):
        m = _CELL.match(line)
        if m:
            cells[-1].end = number - 1
            rest = m.group("rest")
            kind = "markdown" if re.match(r"\s*(\[markdown\]|\[md\])", rest) else "code"
            cells.append(Cell(start=number, end=number, kind=kind, nbgrader=_nbgrader(rest)))
    cells[-1].end = len(lines)
    return [c for c in cells if c.kind != "header" or c.end > 0]


def cell_at(cells: list[Cell], line: int) -> Cell:
    """The cell holding 1-based `line`."""
    for cell in cells:
        if cell.start <= line <= cell.end or (cell.kind == "header" and line <= cell.end):
            return cell
    return cells[-1]


def find_test_functions(text: str) -> dict[str, ast.FunctionDef]:
    """Top-level `test_*` functions of a module source, by name (`test_module` excluded)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    return {node.name: node for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and node.name != "test_module"}


def find_test_cells(text: str) -> list[Cell]:
    """Cells that hold tests: graded/locked nbgrader cells and cells defining `test_*` functions."""
    cells = split_cells(text)
    test_lines = [fn.lineno for fn in find_test_functions(text).values()]
    return [c for c in cells if c.kind == "code" and (
        c.is_graded_test or any(c.start <= n <= c.end for n in test_lines))]


def _marker(line: str) -> str | None:
    stripped = line.strip()
    if stripped.startswith(BEGIN):
        return "begin"
    if stripped.startswith(END):
        return "end"
    return None


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _pairs(lines: list[str], cells: list[Cell]) -> tuple[list[tuple[int, int]], list[str]]:
    """Matched (begin, end) line pairs and every problem found, each naming its lines."""
    pairs, problems, open_ = [], [], []
    for number, line in enumerate(lines, start=1):
        kind = _marker(line)
        if kind == "begin":
            if open_:
                problems.append(f"line {number}: {BEGIN} inside the solution opened at line "
                                f"{open_[-1]} (solutions never nest)")
            open_.append(number)
        elif kind == "end":
            if not open_:
                problems.append(f"line {number}: {END} without a {BEGIN} before it")
                continue
            begin = open_.pop()
            if not open_:
                pairs.append((begin, number))
    for begin in open_:
        problems.append(f"line {begin}: {BEGIN} has no {END}")
    for begin, end in pairs:
        first, last = cell_at(cells, begin), cell_at(cells, end)
        if first is not last:
            problems.append(f"lines {begin}-{end}: {BEGIN} and {END} are in different cells "
                            f"(a new cell starts at line {last.start})")
        elif _indent(lines[begin - 1]) != _indent(lines[end - 1]):
            problems.append(f"lines {begin} and {end}: {BEGIN} and {END} have different indentation")
    return pairs, problems


def _enclosing(tree: ast.AST, line: int) -> list[ast.AST]:
    """Function and class definitions around `line`, outermost first."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    chain = [n for n in ast.walk(tree)
             if isinstance(n, kinds) and n.lineno <= line <= (n.end_lineno or n.lineno)]
    return sorted(chain, key=lambda n: n.lineno)


def _sentence(text: str) -> str:
    """The first sentence of `text`, on one line, without a trailing full stop."""
    text = " ".join(text.split())
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)\.(\s|$)", text)
    return (text[: m.start()] if m else text).strip()


def _describe(doc: str, task_at: int, name: str) -> str:
    """What to implement: the words after `Task NN.M`, else the docstring's summary."""
    after = doc[task_at:].split("\n\n")[0]
    after = re.sub(r"^[\s:.,;\-\u2013\u2014]+", "", after)
    after = _TASK.split(after)[0]  # stop before another task's id
    words = _sentence(after)
    if words:
        return words
    summary = _sentence(_TASK.sub("", doc.strip().split("\n\n")[0]).strip(" .:"))
    if summary:
        if len(summary) > 1 and summary[0].isupper() and summary[1].islower():
            summary = summary[0].lower() + summary[1:]
        return f"implement {name}: {summary}"
    return f"implement {name}"


def _task_for(tree: ast.AST, lines: list[str], cell: Cell, begin: int) -> tuple[str | None, str, str]:
    chain = _enclosing(tree, begin)
    functions = [n for n in chain if not isinstance(n, ast.ClassDef)]
    where = ".".join(n.name for n in chain) or "module level"
    name = where if functions else "this code"
    inner = functions[-1].name if functions else ""
    for node in reversed(chain):
        doc = ast.get_docstring(node, clean=True) or ""
        found = list(_TASK.finditer(doc))
        if not found:
            continue
        chosen = found[0]
        if len(found) > 1 and inner and node is not functions[-1]:
            # A class docstring listing several tasks: the one whose words name this method.
            for i, m in enumerate(found):
                stop = found[i + 1].start() if i + 1 < len(found) else len(doc)
                if re.search(rf"\b{re.escape(inner)}\b", doc[m.end():stop]):
                    chosen = m
                    break
        return chosen.group(1), _describe(doc, chosen.end(), name), where
    # Code at module level: a `Task NN.M` comment earlier in the same cell.
    for number in range(begin - 1, max(cell.start, 1) - 1, -1):
        comment = lines[number - 1].strip()
        m = _TASK.search(comment)
        if m and comment.startswith("#"):
            return m.group(1), _describe(comment, m.end(), name), where
    return None, f"implement {name}", where


def find_solutions(text: str, path: str = "<source>") -> list[Solution]:
    """Every solution block of a module source, checked.

    Raises:
        TitoError: markers that do not pair up, nest, span cells, sit in a test cell, or
            a source that does not parse; the message lists every problem by line number.
    """
    lines = text.splitlines()
    cells = split_cells(text)
    pairs, problems = _pairs(lines, cells)
    tests = find_test_cells(text)
    for begin, end in pairs:
        cell = cell_at(cells, begin)
        if cell in tests:
            problems.append(f"lines {begin}-{end}: solution markers inside a test cell "
                            f"(line {cell.start}); tests are never stubbed")
    if problems:
        raise TitoError(f"{path}: solution markers are not usable; nothing was changed\n  "
                        + "\n  ".join(problems))
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise TitoError(f"{path}:{err.lineno}: {err.msg}; nothing was changed") from None
    solutions = []
    for begin, end in pairs:
        body = [ln for ln in lines[begin:end - 1] if ln.strip()]
        indent = min((_indent(ln) for ln in body), key=len) if body else _indent(lines[begin - 1])
        task, description, where = _task_for(tree, lines, cell_at(cells, begin), begin)
        solutions.append(Solution(begin, end, indent, task, description, where))
    return solutions


def make_student(text: str, path: str = "<source>", keep: Collection[str] = ()) -> str:
    """`text` with every solution block (markers included) replaced by its stub line.

    Args:
        text: the full version of a module source.
        path: the name used in error messages.
        keep: task ids whose solutions stay (without their markers), as if already done.

    Raises:
        TitoError: unusable markers (see `find_solutions`), or a result that does not compile.
    """
    solutions = find_solutions(text, path)
    lines = text.splitlines(keepends=True)
    out, at = [], 0
    for sol in solutions:
        out.extend(lines[at: sol.begin - 1])
        if sol.task is not None and sol.task in keep:
            out.extend(lines[sol.begin: sol.end - 1])
        else:
            marker = lines[sol.begin - 1]
            newline = marker[len(marker.rstrip("\r\n")):] or "\n"
            out.append(sol.stub_line(newline))
        at = sol.end
    out.extend(lines[at:])
    student = "".join(out)
    try:
        compile(student, path, "exec")
    except SyntaxError as err:
        raise TitoError(f"{path}: the student version would not compile (line {err.lineno} "
                        f"of it: {err.msg}); nothing was changed") from None
    return student


def has_markers(text: str) -> bool:
    """Whether `text` still holds solution markers (a full version)."""
    return any(_marker(line) for line in text.splitlines())


def stubs_left(text: str) -> list[str]:
    """Task ids of the `raise NotImplementedError("Task NN.M ...")` stubs still in `text`."""
    return [m.group(1) for m in map(_STUB.match, text.splitlines()) if m]


def task_ids(text: str) -> list[str]:
    """The task ids of a full version, in order, each once."""
    seen: list[str] = []
    for sol in find_solutions(text):
        if sol.task and sol.task not in seen:
            seen.append(sol.task)
    return seen


def solution_leaks(full: str, student: str) -> list[str]:
    """Solution lines of `full` that appear in `student` more often than outside solutions.

    A line such as `return out` may legitimately occur outside every solution; it only
    counts as leaked when the student version holds it more often than the full
    version's non-solution code does. Marker lines left behind count too.
    """
    lines = full.splitlines()
    inside: set[str] = set()
    outside: Counter[str] = Counter()
    spans = [(s.begin, s.end) for s in find_solutions(full)]
    for number, line in enumerate(lines, start=1):
        key = line.strip()
        if any(b <= number <= e for b, e in spans):
            if key and number not in {b for b, _ in spans} | {e for _, e in spans}:
                inside.add(key)
        else:
            outside[key] += 1
    student_lines = student.splitlines()
    have = Counter(line.strip() for line in student_lines)
    leaks = sorted(k for k in inside if have[k] > outside[k])
    leaks += sorted({ln.strip() for ln in student_lines if _marker(ln)})
    return leaks
