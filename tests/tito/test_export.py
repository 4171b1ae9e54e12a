"""`tito export`: nbdev's exporter on percent-format sources, stable, atomic, checked."""
from __future__ import annotations

import hashlib
import subprocess
import sys

from .conftest import Project, output


def package_state(project: Project) -> dict[str, str]:
    """Every file under tinytorch/ with the hash of its bytes."""
    return {str(p.relative_to(project.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((project.root / "tinytorch").rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def test_check_passes_after_export_and_exporting_twice_changes_nothing(project: Project):
    assert project.tito("export", "--all").returncode == 0
    before = package_state(project)
    again = project.tito("export", "--all")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert package_state(project) == before
    check = project.tito("export", "--all", "--check")
    assert check.returncode == 0, output(check)


def test_a_hand_edit_of_a_generated_file_fails_the_check(project: Project):
    target = project.root / "tinytorch" / "compression" / "prune.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    check = project.tito("export", "--all", "--check")
    assert check.returncode == 1
    assert "tinytorch/compression/prune.py" in check.stdout and "tito export" in check.stdout
    assert project.tito("export", "16").returncode == 0
    assert project.tito("export", "--all", "--check").returncode == 0


def test_a_syntax_error_names_file_and_line_and_writes_nothing(project: Project):
    dev = project.dev_file("16_compression")
    lines = dev.read_text().splitlines(keepends=True)
    where = next(i for i, line in enumerate(lines) if line.startswith("def measure_sparsity("))
    lines[where] = "def measure_sparsity(model: Module -> float:\n"
    dev.write_text("".join(lines))
    before = package_state(project)
    result = project.tito("export", "16")
    assert result.returncode == 2
    assert f"modules/16_compression/compression_dev.py:{where + 1}:" in result.stderr
    assert "def measure_sparsity(model: Module -> float:" in result.stderr
    assert "nothing was exported" in result.stderr
    assert package_state(project) == before


def test_module_names_and_errors(project: Project):
    for name in ("16_compression", "16", "compression"):
        assert project.tito("export", name).returncode == 0
    unknown = project.tito("export", "17_memo")
    assert unknown.returncode == 2
    assert "unknown module '17_memo'" in unknown.stderr and "16_compression" in unknown.stderr


def test_generated_files_name_the_source_and_import_relatively(project: Project):
    text = (project.root / "tinytorch" / "compression" / "storage.py").read_text()
    assert "File to edit: ../../modules/16_compression/compression_dev.py" in text
    assert "from ..quantization import" in text and "from tinytorch" not in text


def test_python_dash_m_tito_works(project: Project):
    proc = subprocess.run([sys.executable, "-m", "tito", "--help"], cwd=project.root, env=project.env,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "export" in proc.stdout and "test" in proc.stdout


def test_export_into_a_new_package_folder_creates_its_init(project: Project):
    dev = project.dev_file("90_toy")
    dev.write_text(dev.read_text().replace("#| default_exp toy", "#| default_exp extras.toy"))
    result = project.tito("export", "90_toy")
    assert result.returncode == 0, output(result)
    assert (project.root / "tinytorch" / "extras" / "toy.py").is_file()
    init = project.root / "tinytorch" / "extras" / "__init__.py"
    assert init.is_file() and compile(init.read_text(), str(init), "exec")


def _given(project: Project, name: str, target: str, body: str):
    path = project.dev_file("90_toy").parent / f"{name}_given.py"
    path.write_text(f"# %%\n#| default_exp {target}\n\n# %%\n#| export\n{body}\n")
    return path


def test_given_sources_export_beside_the_lesson_and_orphans_are_removed(project: Project):
    given = _given(project, "helpers", "toy_helpers", "def triple(x):\n    return 3 * x")
    result = project.tito("export", "90_toy")
    assert result.returncode == 0, output(result)
    generated = project.root / "tinytorch" / "toy_helpers.py"
    assert "File to edit: ../modules/90_toy/helpers_given.py" in generated.read_text()
    assert project.tito("export", "--all", "--check").returncode == 0
    # The companion stops exporting that file: --check names it, export removes it.
    given.write_text(given.read_text().replace("default_exp toy_helpers", "default_exp toy_more"))
    check = project.tito("export", "90_toy", "--check")
    assert check.returncode == 1 and "tinytorch/toy_helpers.py" in check.stdout
    result = project.tito("export", "90_toy")
    assert "removed tinytorch/toy_helpers.py" in result.stdout and not generated.exists()
    assert (project.root / "tinytorch" / "toy_more.py").exists()
    # The companion is deleted: what it exported goes too.
    given.unlink()
    result = project.tito("export", "90_toy")
    assert "removed tinytorch/toy_more.py" in result.stdout
    assert not (project.root / "tinytorch" / "toy_more.py").exists()


def test_two_sources_may_not_write_one_file(project: Project):
    _given(project, "clash", "toy", "def clash():\n    return 0")
    before = package_state(project)
    result = project.tito("export", "90_toy")
    assert result.returncode == 2 and "both export" in result.stderr and "clash_given.py" in result.stderr
    assert package_state(project) == before


# ---- export targets and encodings are checked before anything is written --------------

def _files_named(folder, name):
    return [p for p in folder.rglob(name)]


def test_a_target_outside_the_package_is_refused_everywhere(project: Project, tmp_path):
    import pytest as _pytest  # noqa: F401 (parametrizing would copy the project once per case)

    dev = project.dev_file("16_compression")
    given = dev.parent / "storage_given.py"
    original_dev, original_given = dev.read_text(), given.read_text()
    before = package_state(project)
    cases = [
        (dev, "#| default_exp compression.prune", "#| default_exp ../../../../some/where/evil"),
        (given, "#| export compression.encodings", "#| export ../../.."),
        (given, "#| export compression.encodings", "#| export /tmp/evil"),
        (given, "#| export compression.encodings", "#|export compression/evil"),
        (dev, "#| default_exp compression.prune", "#| default_exp compression.evil-name"),
        (dev, "#| default_exp compression.prune", "#| default_exp compression.class"),
        (given, "#| export compression.encodings", "# | exports compression..evil"),
    ]
    for path, old, new in cases:
        text = original_dev if path == dev else original_given
        assert old in text
        path.write_text(text.replace(old, new, 1))
        line = text[:text.index(old)].count("\n") + 1
        where = f"modules/16_compression/{path.name}:{line}:"
        for args in (("export", "16"), ("export", "16", "--check"), ("export", "--all")):
            result = project.tito(*args)
            assert result.returncode == 2, (new, args, output(result))
            assert where in result.stderr and "not a dotted module path inside tinytorch/" in result.stderr, \
                (new, result.stderr)
        status = project.tito("module", "status", "16")
        assert status.returncode == 0 and "error:" in status.stdout, status.stdout
        release = project.tito("release", "16", "--out", str(tmp_path / "course"))
        assert release.returncode == 2 and where in release.stderr, output(release)
        path.write_text(text)
    assert package_state(project) == before
    for root in (project.root.parent, tmp_path):
        assert _files_named(root, "evil*.py") == [] and not (tmp_path / "course").exists()


def test_a_plain_export_and_markdown_lines_are_not_targets(project: Project):
    dev = project.dev_file("90_toy")
    text = dev.read_text()
    dev.write_text(text + '\n# %% [markdown]\n# | export ../../not-a-directive | in a table |\n')
    assert project.tito("export", "90", "--check").returncode == 0


def test_invalid_utf8_names_the_file_and_byte(project: Project, tmp_path):
    dev = project.dev_file("90_toy")
    data = dev.read_bytes()
    at = data.index(b"\n", 200) + 1
    dev.write_bytes(data[:at] + b"# caf\xe9\n" + data[at:])
    line = data[:at].count(b"\n") + 1
    expected = f"modules/90_toy/toy_dev.py:{line}: not valid UTF-8 at byte offset {at + 5}"
    for args in (("export", "90"), ("export", "--all", "--check"), ("module", "start", "90"),
                 ("release", "90", "--out", str(tmp_path / "c")), ("test", "90"), ("grade", "90"),
                 ("tasks", "90")):
        result = project.tito(*args)
        assert result.returncode == 2 and expected in result.stderr, (args, output(result))
        assert "Traceback" not in output(result)
    status = project.tito("module", "status")
    assert status.returncode == 0 and "not valid UTF-8" in status.stdout, output(status)


def test_a_string_opening_a_files_first_cell_becomes_its_docstring(project: Project):
    import ast

    _given(project, "helpers", "toy_helpers",
           'from __future__ import annotations\n"""Tripling, for the toy."""\ndef triple(x):\n    return 3 * x')
    assert project.tito("export", "90_toy").returncode == 0
    text = (project.root / "tinytorch" / "toy_helpers.py").read_text()
    assert text.startswith('"""Tripling, for the toy."""\n')
    assert ast.get_docstring(ast.parse(text)) == "Tripling, for the toy." and text.count("Tripling") == 1
    # the file still runs: the docstring may stand before a __future__ import
    compile(text, "toy_helpers.py", "exec")


def test_exporti_cells_export_to_their_target_unlisted_and_with_relative_imports(project: Project):
    import ast

    path = project.dev_file("90_toy").parent / "inner_given.py"
    path.write_text("# %%\n#| default_exp toy_inner\n\n"
                    "# %%\n#| export\ndef shown():\n    return 1\n\n"
                    "# %%\n#| exporti\nfrom tinytorch.core.checks import check_int\n\n"
                    "def hidden(n):\n    return check_int('n', n, 0)\n\n"
                    "# %%\n#| exporti toy_other\nfrom tinytorch.core.checks import check_number\n\n"
                    "def elsewhere(x):\n    return check_number('x', x)\n")
    result = project.tito("export", "90_toy")
    assert result.returncode == 0, output(result)
    inner = (project.root / "tinytorch" / "toy_inner.py").read_text()
    other = (project.root / "tinytorch" / "toy_other.py").read_text()
    names = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(inner).body
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__"}
    assert names == {"__all__": ["shown"]} and "def hidden(n):" in inner
    assert "__all__ = []" in other and "def elsewhere(x):" in other
    for text in (inner, other):
        assert "from .core.checks import" in text and "from tinytorch" not in text
    assert project.tito("export", "--all", "--check").returncode == 0
