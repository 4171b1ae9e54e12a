"""The student version of a module source: stubs, task ids, refused markers, leak check."""
from __future__ import annotations

import textwrap

import pytest

from tito import export, stubs
from tito.project import TitoError, all_modules
from tito.workflow import check_student

from .conftest import DATA, ROOT

SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # A lesson

    # %% nbgrader={"grade": false, "grade_id": "scale", "solution": true}
    #| export
    def scale(x, k):
        """`x` times `k`. Task 42.1: multiply, keeping the dtype."""
        ### BEGIN SOLUTION
        out = x * k
        return out
        ### END SOLUTION

    # %% nbgrader={"grade": false, "grade_id": "box", "solution": true}
    class Box:
        """A value in a box. Task 42.2: `get` returns it. Task 42.3: `put` stores it."""

        def get(self):
            """The stored value."""
            ### BEGIN SOLUTION
            if not hasattr(self, "v"):
                return None
            return self.v
            ### END SOLUTION

        def put(self, v):
            ### BEGIN SOLUTION
            self.v = v
            ### END SOLUTION

    # %% nbgrader={"grade": true, "grade_id": "test-scale", "locked": true, "points": 1}
    def test_unit_scale():
        """Task 42.1"""
        assert scale(2, 3) == 6
    ''')


def test_stub_replaces_the_body_and_keeps_signature_docstring_and_tests():
    student = stubs.make_student(SOURCE)
    assert "### BEGIN SOLUTION" not in student and "out = x * k" not in student
    assert '    raise NotImplementedError("Task 42.1: multiply, keeping the dtype")\n' in student
    assert 'def scale(x, k):\n    """`x` times `k`. Task 42.1: multiply, keeping the dtype."""\n' in student
    assert SOURCE[SOURCE.index("# %% nbgrader={\"grade\": true"):] in student
    compile(student, "<student>", "exec")


def test_method_stubs_take_the_task_from_the_class_and_raise_when_called():
    student = stubs.make_student(SOURCE)
    assert '        raise NotImplementedError("Task 42.2: `get` returns it")\n' in student
    assert '        raise NotImplementedError("Task 42.3: `put` stores it")\n' in student
    namespace: dict = {}
    exec(compile(student, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"^Task 42\.2: "):
        namespace["Box"]().get()


def test_task_ids_stubs_left_and_keep():
    assert stubs.task_ids(SOURCE) == ["42.1", "42.2", "42.3"]
    assert stubs.stubs_left(stubs.make_student(SOURCE)) == ["42.1", "42.2", "42.3"]
    half = stubs.make_student(SOURCE, keep={"42.1"})
    assert stubs.stubs_left(half) == ["42.2", "42.3"]
    assert "    out = x * k\n    return out\n" in half and "BEGIN SOLUTION" not in half


def test_summary_line_describes_a_task_without_words_after_its_id():
    text = SOURCE.replace("Task 42.1: multiply, keeping the dtype.", "Task 42.1.")
    student = stubs.make_student(text)
    assert 'raise NotImplementedError("Task 42.1: implement scale: `x` times `k`")' in student


def test_leak_check_finds_solution_lines_but_not_shared_ones():
    student = stubs.make_student(SOURCE)
    assert stubs.solution_leaks(SOURCE, student) == []
    stub = 'raise NotImplementedError("Task 42.1'
    leaked = student.replace(stub, "out = x * k\n    " + stub)
    assert stubs.solution_leaks(SOURCE, leaked) == ["out = x * k"]
    # `return out` also occurs outside any solution: only an extra copy is a leak.
    shared = SOURCE.replace("# %% nbgrader={\"grade\": true", "# %%\ndef other(out):\n    return out\n\n"
                            "# %% nbgrader={\"grade\": true")
    assert stubs.solution_leaks(shared, stubs.make_student(shared)) == []


@pytest.mark.parametrize("case", ["begin without end", "end without begin", "nested", "across cells"])
def test_unusable_markers_are_refused_with_line_numbers(case):
    lines = SOURCE.splitlines(keepends=True)
    begin = next(i for i, ln in enumerate(lines) if "BEGIN SOLUTION" in ln)  # 0-based
    end = next(i for i, ln in enumerate(lines) if "END SOLUTION" in ln and i > begin)
    if case == "begin without end":
        del lines[end]
        expect = [f"line {begin + 1}"]
    elif case == "end without begin":
        del lines[begin]
        expect = [f"line {end}"]
    elif case == "nested":
        lines.insert(begin + 2, "    ### BEGIN SOLUTION\n")
        expect = [f"line {begin + 3}", f"opened at line {begin + 1}"]
    else:
        lines.insert(end, "# %%\n")
        expect = [f"lines {begin + 1}-{end + 2}"]
    text = "".join(lines)
    with pytest.raises(TitoError) as err:
        stubs.make_student(text, "lesson.py")
    for words in expect:
        assert words in str(err.value), str(err.value)


def test_markers_in_a_test_cell_are_refused():
    text = SOURCE.replace('    assert scale(2, 3) == 6\n',
                          '    ### BEGIN SOLUTION\n    assert scale(2, 3) == 6\n    ### END SOLUTION\n')
    assert text != SOURCE
    with pytest.raises(TitoError, match="inside a test cell"):
        stubs.make_student(text)


def test_the_toy_module_gives_two_stubs():
    text = (DATA / "toy_dev.py").read_text()
    student = stubs.make_student(text)
    assert stubs.stubs_left(student) == ["90.1", "90.2"]
    assert check_student(text, student) == []


MODULES = all_modules(ROOT)


@pytest.mark.parametrize("module", MODULES, ids=[m.dirname for m in MODULES])
def test_student_version_of_every_module(module):
    """Compiles, exports, holds no solution text, keeps every test cell, names every task."""
    full = module.dev_file.read_text(encoding="utf-8")
    if not stubs.has_markers(full):
        pytest.skip(f"{module.dirname} has no solution markers (is it a student version?)")
    rel = str(module.dev_file.relative_to(ROOT))
    student = stubs.make_student(full, rel)
    assert check_student(full, student, rel) == []
    assert not stubs.has_markers(student)
    solutions = stubs.find_solutions(full, rel)
    assert len(stubs.stubs_left(student)) == len(solutions)
    unnamed = [f"line {s.begin} ({s.where})" for s in solutions if s.task is None]
    assert not unnamed, f"solutions whose docstring names no 'Task NN.M': {unnamed}"
    assert all(t.split(".")[0] == module.number for t in stubs.task_ids(full))
    export.render(module, source=student)  # the stubs must export too
