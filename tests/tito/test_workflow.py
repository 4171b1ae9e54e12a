"""The student workflow, run as a student would, on a temporary copy of the project."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tito import inline as inline_tests, stubs
from tito.project import ModuleInfo

from .conftest import TOY, Project, failing_tasks, output, summary


def test_temp_project_imports_the_copy(project: Project):
    code = "import tinytorch, tito, tinytorch.toy; print(tinytorch.__file__); print(tito.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.root, env=project.env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert line.startswith(str(project.root)), f"imported {line}, not the copy in {project.root}"


def _run_tests(project: Project, dirname: str) -> tuple[bool, set[str], str]:
    """Every inline test (one by one) and the pytest suite: (all passed, failing tasks, output).

    `tito test` would also run the dev file's `__main__` block, which in some modules runs
    long analyses, and the suite's slow tests train networks for tens of seconds; the
    toy module's tests below go through `tito test` itself.
    """
    module = ModuleInfo(dirname[:2], dirname[3:], project.root)
    inline = inline_tests.run_inline_tests(module, list(inline_tests.inline_tests(module)), env=project.env)
    failing = {t for r in inline.results if not r.passed for t in r.tasks}
    text = "\n".join(f"{'passed' if r.passed else 'FAILED'} {r.name} {r.tasks}: {r.message}"
                     for r in inline.results)
    ok = all(r.passed for r in inline.results)
    if module.tests_dir.is_dir():
        proc = project.suite(dirname)
        text += "\n" + output(proc)
        failing |= failing_tasks(proc.stdout)
        ok = ok and proc.returncode in (0, 5)  # 5: every test there is marked slow
    return ok, failing, text


@pytest.mark.parametrize("dirname", [TOY, "15_quantization", "16_compression"])
def test_start_export_test_reset_loop(project: Project, dirname: str):
    """start -> every task fails -> (toy: half done) -> reset is byte-identical -> tests pass."""
    dev = project.dev_file(dirname)
    if not dev.exists():
        pytest.skip(f"{dirname} does not exist yet")
    original = dev.read_bytes()
    full = original.decode("utf-8")
    tasks = stubs.task_ids(full)
    assert tasks, f"{dirname} has no tasks"
    number = dirname[:2]

    proc = project.tito("module", "start", number)
    assert proc.returncode == 0, output(proc)
    assert not stubs.has_markers(dev.read_text()) and stubs.stubs_left(dev.read_text())
    note = f"# a line the student wrote in {dirname}\n"
    with dev.open("a") as f:
        f.write(note)

    assert project.tito("export", number).returncode == 0
    ok, failing, text = _run_tests(project, dirname)
    assert not ok, text
    for task in sorted(set(tasks) - failing):  # a task only the slow tests check
        proc = project.suite(dirname, "--task", task, "--maxfail", "1")
        failing |= failing_tasks(proc.stdout)
        text += "\n" + output(proc)
    missing = set(tasks) - failing
    assert not missing, f"tasks with no failing test in the student version: {sorted(missing)}\n{text}"

    if dirname == TOY:
        _half_finished(project, dev, full + note)

    proc = project.tito("module", "reset", number)
    assert proc.returncode == 0, output(proc)
    assert dev.read_bytes() == original
    saved = [p for p in (project.root / ".tito" / "backups" / dirname).glob("*.py") if note in p.read_text()]
    assert saved, "the student's line is in no backup"
    listing = output(project.tito("module", "backups", number))
    assert any(f"\n│ {p.stem} " in listing for p in saved), listing

    assert project.tito("export", number).returncode == 0
    assert project.tito("export", number, "--check").returncode == 0
    ok, failing, text = _run_tests(project, dirname)
    assert ok and not failing, text


def _half_finished(project: Project, dev, full: str) -> None:
    """Task 90.1 done, 90.2 not: 90.1's tests pass, 90.2's fail, and every report says so."""
    dev.write_text(stubs.make_student(full, keep={"90.1"}))
    assert project.tito("export", TOY).returncode == 0

    done = project.tito("test", TOY, "--task", "90.1")
    assert done.returncode == 0 and summary(output(done)) == (2, 0, 0), output(done)
    todo = project.tito("test", TOY, "--task", "90.2")
    text = output(todo)
    assert todo.returncode == 1 and summary(text) == (0, 2, 0), text
    assert "Task 90.2 is not implemented yet: implement Counter.tick" in text
    assert "Traceback" not in text and "FAILED  test_unit_tick [Task 90.2]" in text, text
    assert "Task 90.2: 1 failed" in text

    everything = output(project.tito("test", TOY))
    assert "Task 90.1: 1 passed" in everything and "Task 90.2: 1 failed" in everything, everything
    assert "passed  test_unit_double [Task 90.1]" in everything
    assert failing_tasks(everything) == {"90.2"}
    assert "Traceback" not in everything and "toy_dev.py stopped: Task 90.2 is not implemented yet" in everything

    status = output(project.tito("module", "status", TOY))
    assert "student" in status and "1/2" in status and "in sync" in status, status
    grade = json.loads(project.tito("grade", TOY, "--json").stdout)
    assert (grade["score"], grade["max"]) == (1, 3)
    assert [c["passed"] for c in grade["cells"]] == [True, False]


def test_a_wrong_answer_shows_expected_and_received(project: Project):
    dev = project.dev_file(TOY)
    full = dev.read_text()
    wrong = full.replace("    y = x * 2\n", "    y = x + 2\n")
    dev.write_text(wrong)
    text = output(project.tito("test", TOY, "--task", "90.1"))
    assert "check failed at modules/90_toy/toy_dev.py" in text and "in test_unit_double" in text, text
    assert "out = array([ 3. -0.5], shape=(2,), dtype=float64)" in text, text
    assert "expected = array([ 2. -5.], shape=(2,), dtype=float64)" in text, text


def test_unusable_markers_change_nothing(project: Project):
    dev = project.dev_file(TOY)
    lines = dev.read_text().splitlines(keepends=True)
    begin = next(i for i, ln in enumerate(lines) if "BEGIN SOLUTION" in ln)
    lines.insert(begin + 1, "    ### BEGIN SOLUTION\n")  # nested, and then one END too few
    broken = "".join(lines).encode()
    dev.write_bytes(broken)
    proc = project.cli("module", "start", TOY)
    assert proc.returncode == 2
    assert f"line {begin + 2}: ### BEGIN SOLUTION inside the solution opened at line {begin + 1}" in proc.stderr
    assert f"line {begin + 1}: ### BEGIN SOLUTION has no ### END SOLUTION" in proc.stderr
    assert dev.read_bytes() == broken
    assert not (project.root / ".tito").exists()


def test_start_twice_and_reset_twice_change_nothing(project: Project):
    dev = project.dev_file(TOY)
    original = dev.read_bytes()
    assert "already the full version" in output(project.tito("module", "reset", TOY))
    assert project.tito("module", "start", TOY).returncode == 0
    student = dev.read_bytes()
    again = project.tito("module", "start", TOY)
    assert again.returncode == 0 and "already the student version" in again.stdout
    assert dev.read_bytes() == student
    assert project.tito("module", "reset", TOY).returncode == 0
    assert "already the full version" in project.tito("module", "reset", TOY).stdout
    assert dev.read_bytes() == original
    backups = sorted((project.root / ".tito" / "backups" / TOY).glob("*.py"))
    assert [p.read_bytes() for p in backups] == [original, student]
    restored = project.tito("module", "reset", TOY, "--backup", "2")
    assert restored.returncode == 0 and dev.read_bytes() == student
    assert "already saved as backup 1" in restored.stdout


def test_release_writes_student_versions_and_refuses_a_full_folder(project: Project, tmp_path):
    out = tmp_path / "course"
    given = project.dev_file(TOY).parent / "helpers_given.py"
    given.write_text("# %%\n#| default_exp toy_helpers\n\n# %%\n#| export\ndef triple(x):\n    return 3 * x\n")
    proc = project.tito("release", TOY, "--out", str(out))
    assert proc.returncode == 0, output(proc)
    released = (out / "modules" / TOY / "toy_dev.py").read_text()
    full = project.dev_file(TOY).read_text()
    assert stubs.stubs_left(released) == ["90.1", "90.2"] and stubs.solution_leaks(full, released) == []
    assert (out / "modules" / TOY / "ABOUT.md").read_text().startswith("# Module 90")
    assert (out / "modules" / TOY / "helpers_given.py").read_bytes() == given.read_bytes()  # given code goes along
    # New files get the umask's usual mode, not the owner-only mode of a temporary file.
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "modules" / TOY / "toy_dev.py").stat().st_mode & 0o777 == 0o666 & ~umask
    refused = project.tito("release", TOY, "--out", str(out))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert project.tito("release", TOY, "--out", str(out), "--force").returncode == 0
    # From a student working copy, the kept full version is what gets released.
    assert project.tito("module", "start", TOY).returncode == 0
    again = project.tito("release", TOY, "--out", str(tmp_path / "again"))
    assert again.returncode == 0, output(again)
    assert (tmp_path / "again" / "modules" / TOY / "toy_dev.py").read_text() == released


def test_reset_falls_back_to_the_committed_version(project: Project):
    dev = project.dev_file(TOY)
    original = dev.read_bytes()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", str(dev)], ["commit", "-q", "-m", "toy"]):
        subprocess.run(git + args, cwd=project.root, check=True, capture_output=True)
    assert project.tito("module", "start", TOY).returncode == 0
    (project.root / ".tito" / "full" / f"{TOY}.py").unlink()
    assert project.tito("module", "reset", TOY).returncode == 0
    assert dev.read_bytes() == original


def test_reset_without_any_full_version_says_what_to_do(project: Project):
    assert project.tito("module", "start", TOY).returncode == 0
    (project.root / ".tito" / "full" / f"{TOY}.py").unlink()
    student = project.dev_file(TOY).read_bytes()
    proc = project.tito("module", "reset", TOY)
    assert proc.returncode == 2 and "--backup ID" in proc.stderr
    assert project.dev_file(TOY).read_bytes() == student


def test_release_never_writes_over_the_working_tree(project: Project, tmp_path):
    before = project.dev_file(TOY).read_bytes()
    given = project.root / "modules" / "16_compression" / "storage_given.py"
    given_before = given.read_bytes()
    link = tmp_path / "sneaky"
    link.symlink_to(project.root)
    for out, says in ((".", "is the project"), (str(project.root), "is the project"),
                      (str(project.root.parent), "a folder holding the project"), (str(link), "is the project"),
                      ("modules", "lies among the project's working files"),
                      ("tinytorch/x", "lies among the project's working files")):
        for extra in ((), ("--force",)):
            result = project.tito("release", TOY, "--out", out, *extra)
            assert result.returncode == 2 and says in result.stderr and "nothing was written" in result.stderr, \
                (out, extra, output(result))
    assert project.dev_file(TOY).read_bytes() == before and given.read_bytes() == given_before
    # a folder inside the project but outside its working files is fine
    inside = project.tito("release", TOY, "--out", "dist")
    assert inside.returncode == 0, output(inside)
    assert (project.root / "dist" / "modules" / TOY / "toy_dev.py").is_file()
    # a release folder whose modules/ is a link into the project is refused file by file
    out = tmp_path / "linked"
    out.mkdir()
    (out / "modules").symlink_to(project.root / "modules")
    result = project.tito("release", TOY, "--out", str(out), "--force")
    assert result.returncode == 2 and "lies among the project's working files" in result.stderr, output(result)
    assert project.dev_file(TOY).read_bytes() == before


def test_grade_withholds_the_points_of_a_task_whose_pytest_tests_fail(project: Project):
    """`tito grade` and `tito test` agree: an answer that passes the lesson's own test cell but
    fails the task's pytest tests earns nothing, and the grade says which tests to run."""
    dev = project.dev_file(TOY)
    dev.write_text(dev.read_text().replace("    y = x * 2\n", "    y = x * 2 if x.ndim == 1 else x\n"))
    assert project.tito("export", TOY).returncode == 0
    test = output(project.tito("test", TOY))
    assert "Task 90.1: 1 failed" in test, test
    grade = json.loads(project.tito("grade", TOY, "--json").stdout)
    cell = grade["cells"][0]
    assert (grade["score"], cell["passed"]) == (2, False), grade
    assert "Task 90.1: 1 pytest test(s) fail (test_double_matches_numpy)" in cell["message"], cell
    assert "tito test 90 --task 90.1" in cell["message"], cell
    inline = json.loads(project.tito("grade", TOY, "--json", "--inline-only").stdout)
    assert inline["score"] == 3 and inline["cells"][0]["passed"], inline


def test_test_names_every_skip_group_with_its_reason(project: Project):
    """A missing reference package skips a whole file, a test skips for a reason of its own, and
    a lesson ends its run early (exit code 77): `tito test` counts all three and says why."""
    suite = project.root / "tests" / TOY
    (suite / "test_needs_extra.py").write_text(
        "import pytest\n\nsurely_missing = pytest.importorskip('surely_missing_package')\n\n\n"
        "def test_never_runs():\n    assert False\n")
    (suite / "test_own_reason.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='shown as it is')\ndef test_skipped():\n    assert False\n")
    dev = project.dev_file(TOY)
    dev.write_text(dev.read_text() + '\n# %%\nif __name__ == "__main__":\n'
                   '    print("skipped: the rest needs a package that is missing")\n    raise SystemExit(77)\n')
    proc = project.tito("test", TOY)
    text = output(proc)
    assert proc.returncode == 0 and summary(text) == (2, 0, 3), text
    assert "inline tests modules/90_toy/toy_dev.py: skipped, the rest needs a package that is missing" in text
    assert ("1 skipped: needs 'surely_missing_package', not installed here (install it with: "
            'pip install -e ".[dev,reference]")') in text, text
    assert "1 skipped: shown as it is" in text, text
