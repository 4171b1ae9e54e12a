"""Lessons that write several files: each file imports on its own, in a fresh interpreter and
in any order, and the names a lesson made public stay where users import them from."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each lesson's files, in the order a reader meets them.
SPLIT = {
    "01": ["tinytorch.core.tensor", "tinytorch.core.shape_ops"],
    "02": ["tinytorch.core.module", "tinytorch.core.activations"],
    "15": ["tinytorch.quantization.int8", "tinytorch.quantization.layers", "tinytorch.quantization.convert"],
    "19": ["tinytorch.benchmarking.timing", "tinytorch.benchmarking.benchmark", "tinytorch.benchmarking.variants"],
}
MODULES = [name for names in SPLIT.values() for name in names]


def _fresh_import(name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", MODULES)
def test_each_file_imports_first_in_a_fresh_interpreter(name):
    # A cycle between two files shows only when the "wrong" one is imported first.
    done = _fresh_import(name)
    assert done.returncode == 0, f"import {name} failed:\n{done.stderr}"


@pytest.mark.parametrize("name", MODULES)
def test_each_generated_file_has_a_docstring(name):
    path = ROOT / (name.replace(".", "/") + ".py")
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path.name} has no docstring"


def test_module_has_a_file_of_its_own_and_the_old_imports_still_work():
    from tinytorch.core import activations, layers, module

    assert module.Module.__module__ == "tinytorch.core.module"
    assert activations.Module is module.Module and layers.Module is module.Module
    assert "Module" in activations.__all__ and module.__all__ == ["Module"]


def test_tensor_re_exports_the_shape_ops():
    from tinytorch.core import shape_ops, tensor

    for name in shape_ops.__all__:
        assert getattr(tensor, name) is getattr(shape_ops, name), name
        assert name in tensor.__all__, name
    x = tensor.Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.sum().item() == 10.0 and x.T.shape == (2, 2) and x[0].shape == (2,)


@pytest.mark.parametrize("package", ["tinytorch.quantization", "tinytorch.benchmarking"])
def test_the_package_exports_every_public_name_of_its_files(package):
    import importlib

    pkg = importlib.import_module(package)
    files = [name for name in MODULES if name.startswith(package + ".")]
    for file in files:
        for name in importlib.import_module(file).__all__:
            if name.isupper() and not hasattr(pkg, name):
                continue  # constants (INT8_MIN, ...) stay in their file
            assert getattr(pkg, name) is getattr(importlib.import_module(file), name), f"{package}.{name}"
            assert name in pkg.__all__, f"{package}.__all__ lacks {name}"
