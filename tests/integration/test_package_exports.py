"""Every package `__init__.py` re-exports every public name of its submodules.

A name a generated file lists in `__all__` is public: `from tinytorch.<package> import
name` must work, and the package's own `__all__` must list it. Functions that files share
but users need not see are exported with `#| exporti`, which keeps them out of `__all__`.
"""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import tinytorch

# tinytorch.core is the framework's modules side by side; its names are imported from
# them (`from tinytorch.core.layers import Linear`), as the design's contract writes them,
# and its __init__ re-exports nothing.
NAMESPACES = {"tinytorch.core"}


def packages() -> list[str]:
    found = [info.name for info in pkgutil.walk_packages(tinytorch.__path__, "tinytorch.") if info.ispkg]
    return sorted(name for name in found if name not in NAMESPACES)


def submodules(package: str) -> list[str]:
    module = importlib.import_module(package)
    return sorted(info.name for info in pkgutil.iter_modules(module.__path__, package + ".") if not info.ispkg)


def test_the_walk_finds_the_packages():
    assert {"tinytorch.compression", "tinytorch.profiling", "tinytorch.deploy"} <= set(packages())


@pytest.mark.parametrize("package", packages())
def test_the_package_re_exports_every_public_name_of_its_submodules(package):
    init = importlib.import_module(package)
    listed = set(getattr(init, "__all__", ()))
    missing = []
    for name in submodules(package):
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", ()):
            if public not in listed or getattr(init, public, None) is not getattr(module, public):
                missing.append(f"{name.rsplit('.', 1)[1]}.{public}")
    assert not missing, (f"{package}/__init__.py does not re-export (import and list in __all__): "
                         f"{', '.join(missing)}; or export it with '#| exporti' to keep it internal")


@pytest.mark.parametrize("package", packages())
def test_the_package_all_names_only_what_it_has(package):
    init = importlib.import_module(package)
    absent = [name for name in getattr(init, "__all__", ()) if not hasattr(init, name)]
    assert not absent, f"{package}.__all__ names what it does not define: {absent}"
