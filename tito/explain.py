"""Test failures in a student's words: which task is missing, or what was expected and what came back."""
from __future__ import annotations

import ast
import contextlib
import linecache
import re
import traceback
import types
from pathlib import Path

_NOT_IMPLEMENTED = re.compile(r"^\s*Task (\d+\.\d+)\s*:?\s*(.*)$", re.S)


def _short(value: object, limit: int = 240) -> str:
    """A one-glance repr: small arrays in full, big ones summarised, long text cut."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            body = np.array2string(value, threshold=24, edgeitems=3, precision=6)
            text = f"array({body}, shape={value.shape}, dtype={value.dtype})"
        else:
            text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real failure
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _frames(tb) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(tb)) if tb is not None else []


def _where(frame: traceback.FrameSummary) -> str:
    path = Path(frame.filename)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd())
    return f"{path}:{frame.lineno} in {frame.name}"


def _own_frame(frames: list[traceback.FrameSummary]) -> int:
    """Index of the innermost frame in the project (under the working folder), else the last."""
    here = Path.cwd().resolve()
    for i in range(len(frames) - 1, -1, -1):
        path = Path(frames[i].filename).resolve()
        if path.is_relative_to(here) and "site-packages" not in path.parts:
            return i
    return len(frames) - 1


def _assert_source(filename: str, lineno: int) -> str | None:
    """The whole `assert` statement around `lineno` (it may span lines), or None."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            return ast.get_source_segment(source, node)
    return None


def _values(statement: str, frame: types.FrameType) -> list[str]:
    """`expression = value` for what a failed assert looked at: its plain variables, and
    the two sides of each comparison when reading them calls nothing."""
    try:
        tree = ast.parse(statement)
    except SyntaxError:
        return []
    shown, out = set(), []
    sides = [side for node in ast.walk(tree) if isinstance(node, ast.Compare)
             for side in (node.left, *node.comparators)
             if not isinstance(side, ast.Name) and any(isinstance(n, ast.Name) for n in ast.walk(side))
             and not any(isinstance(n, (ast.Call, ast.Lambda, ast.NamedExpr)) for n in ast.walk(side))]
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    for node in names + sides:
        source = ast.unparse(node)
        if source in shown:
            continue
        shown.add(source)
        try:
            value = eval(compile(ast.Expression(node), "<assert>", "eval"), frame.f_globals, dict(frame.f_locals))
        except Exception:  # noqa: BLE001 - a value we cannot read is simply not shown
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
            continue
        out.append(f"{source} = {_short(value)}")
    return out


def explain(exc: BaseException, tb=None) -> str:
    """A failure in a student's words: which task is missing, or what was expected and what came back."""
    tb = tb if tb is not None else exc.__traceback__
    frames = _frames(tb)
    message = str(exc).strip()
    notes = [n for n in getattr(exc, "__notes__", []) if n.strip()][:3]
    if isinstance(exc, NotImplementedError):
        m = _NOT_IMPLEMENTED.match(message)
        if m:
            return f"Task {m.group(1)} is not implemented yet: {m.group(2).strip()}"
        where = f" ({_where(frames[-1])})" if frames else ""
        return f"not implemented yet{': ' + message if message else ''}{where}"
    if isinstance(exc, AssertionError):
        # Point at the project's own code (the test), not at numpy.testing's internals.
        depth = _own_frame(frames)
        last = frames[depth] if frames else None
        statement = _assert_source(last.filename, last.lineno) if last else None
        lines = [f"check failed at {_where(last)}" if last else "check failed"]
        if statement and not message.startswith("assert"):
            lines[0] += ": " + " ".join(statement.split())
        body = message.splitlines()
        lines += ["    " + ln for ln in body[:12]] + (["    ..."] if len(body) > 12 else [])
        if statement and not message.startswith("assert"):  # pytest already shows the values
            frame = tb
            for _ in range(depth):
                frame = frame.tb_next
            lines += ["    " + v for v in _values(statement, frame.tb_frame)[:6]]
        return "\n".join(lines + ["    " + n for n in notes])
    where = f"\n    raised at {_where(frames[_own_frame(frames)])}" if frames else ""
    body = message.splitlines()[:6]
    text = f"{type(exc).__name__}: {body[0] if body else ''}" + "".join(f"\n    {ln}" for ln in body[1:])
    return text + where + "".join(f"\n    {n}" for n in notes)


def headline(message: str, limit: int = 90) -> str:
    """One short line for a table: which task is missing, or where a check failed."""
    m = re.match(r"^Task (\d+\.\d+) is not implemented yet", message)
    if m:
        return f"Task {m.group(1)} not implemented yet"
    first = message.splitlines()[0] if message else "failed"
    first = re.sub(r"^check failed at (\S+):(\d+) in (\w+).*$", r"check failed in \3 (line \2)", first)
    return first if len(first) <= limit else first[: limit - 3] + "..."


def friendly_traceback_tail(output: str) -> str | None:
    """The plain-words version of the last exception line of a Python traceback."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    last = lines[-1]
    m = re.match(r"^NotImplementedError: (.*)$", last)
    if m:
        t = _NOT_IMPLEMENTED.match(m.group(1))
        if t:
            return f"Task {t.group(1)} is not implemented yet: {t.group(2).strip()}"
    return None
