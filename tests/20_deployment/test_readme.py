"""The README's deployment example runs as printed, after the compression example it continues."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

for _package in ("torch", "onnx", "onnxruntime", "safetensors"):  # the example deploys to all of them
    pytest.importorskip(_package)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_deployment_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    first = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    deploy = re.search(r"## Deployment.*?```py\n(.*?)```", text, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_QUIET", "1")
    scope = {"__name__": "readme"}
    exec(compile(first, "README.md compression example", "exec"), scope)
    exec(compile(deploy, "README.md deployment example", "exec"), scope)
    for name in ("digits.safetensors", "digits.onnx"):
        assert (tmp_path / name).stat().st_size > 0
    from tinytorch.core.tensor import Tensor

    x = scope["x_test"][:5]
    np.testing.assert_allclose(scope["back"](Tensor(x)).data, scope["model"](Tensor(x)).data, rtol=0, atol=1e-5)
    assert "[[" in capsys.readouterr().out  # the runtime's outputs were printed
