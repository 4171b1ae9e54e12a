"""The README's code runs as printed (in a temporary folder, so its file lands there)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_a_python_example():
    assert python_blocks(), "README.md lost its code example"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_QUIET", "1")
    exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "file written by save_compressed" in out
    saved = tmp_path / "digits.ttz"
    assert saved.stat().st_size > 0
    accuracy = float(re.search(r"test accuracy after pruning: ([\d.]+)%", out).group(1))
    assert accuracy > 80.0
