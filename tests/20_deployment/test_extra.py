"""Module 20: torch, onnx, onnxruntime and safetensors are an optional extra, imported lazily."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRA = ("torch", "onnx", "onnxruntime", "safetensors")

# Runs in a fresh interpreter in which the extra's packages cannot be imported.
SCRIPT = textwrap.dedent('''
    import importlib, json, pkgutil, sys
    BLOCKED = {blocked!r}

    class Absent:
        """A meta path finder that makes the extra's packages look uninstalled."""
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    import numpy as np
    import tinytorch
    imported = []
    for info in pkgutil.walk_packages(tinytorch.__path__, "tinytorch."):
        importlib.import_module(info.name)
        imported.append(info.name)
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch import deploy
    model = Sequential(Linear(3, 2))
    calls = {{
        "to_torch": lambda: deploy.to_torch(model),
        "from_torch": lambda: deploy.from_torch(object()),
        "save_safetensors": lambda: deploy.save_safetensors(model, "never.safetensors"),
        "load_safetensors": lambda: deploy.load_safetensors("never.safetensors", model),
        "export_onnx": lambda: deploy.export_onnx(model, "never.onnx", (1, 3)),
        "onnx_session": lambda: deploy.onnx_session("never.onnx"),
    }}
    errors = {{}}
    for name, call in calls.items():
        try:
            call()
        except ImportError as err:
            errors[name] = [type(err).__name__, str(err)]
        else:
            errors[name] = None
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({{"imported": imported, "errors": errors, "loaded": loaded}}))
''')


def run_without_extra(tmp_path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(blocked=EXTRA)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_without_the_extra_everything_imports_and_the_functions_name_it(tmp_path):
    result = run_without_extra(tmp_path)
    assert "tinytorch.deploy.torch_bridge" in result["imported"] and "tinytorch.compression.storage" in result["imported"]
    assert result["loaded"] == []  # nothing imported torch & co. behind our back
    for name, error in result["errors"].items():
        assert error is not None, f"{name} ran without the extra"
        kind, message = error
        assert kind == "MissingExtraError", (name, error)
        assert 'pip install "tinytorch[deploy]"' in message and "'deploy'" in message, message
        assert name in message or "export_onnx" in message, message
    assert not list(tmp_path.iterdir())  # nothing was written


def test_importing_tinytorch_does_not_import_the_extra(tmp_path):
    code = ("import sys, tinytorch.deploy, tinytorch.compression, tinytorch.quantization; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {EXTRA!r}))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
