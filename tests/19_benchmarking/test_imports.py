"""Module 19 uses Modules 15 and 16 as library code: only through their public packages."""
import re
from pathlib import Path

import pytest

import tinytorch.compression
import tinytorch.quantization
from tinytorch.benchmarking import benchmark, variants

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "modules" / "19_benchmarking" / "benchmarking_dev.py"
# Every file the lesson writes (timing.py, benchmark.py, variants.py), not the hand-written __init__.
GENERATED = sorted(p for p in (ROOT / "tinytorch" / "benchmarking").glob("*.py") if p.name != "__init__.py")
# Any mention of a submodule: tinytorch.compression.prune, ..compression.storage, ...
SUBMODULE = re.compile(r"(tinytorch|^\s*from\s+\.\.|^\s*import\s+\.\.)\.?(compression|quantization)\.\w+", re.M)
SUBMODULE_NAMES = ("compression.prune", "compression.iterative", "compression.storage", "compression.surgery",
                   "quantization.int8")
IMPORT = re.compile(r"^\s*(from\s+\S+\s+import\s+.*|import\s+.*)$", re.M)


def test_the_lesson_writes_three_files():
    assert [p.name for p in GENERATED] == ["benchmark.py", "timing.py", "variants.py"]


@pytest.mark.parametrize("path", [SOURCE, *GENERATED], ids=["source", *(p.stem for p in GENERATED)])
def test_no_submodule_of_compression_or_quantization_is_imported(path):
    text = path.read_text(encoding="utf-8")
    offending = [m.group(0) for m in SUBMODULE.finditer(text)]
    assert not offending, f"{path.name} reaches into a submodule: {offending}"
    for name in ("int8", "prune", "iterative", "storage", "surgery"):
        for line in IMPORT.findall(text):
            assert name not in line.split("import")[0], f"{path.name}: {line.strip()}"
    # Nor through an attribute of the package object (compression.storage.to_bytes, ...).
    for sub in SUBMODULE_NAMES:
        assert sub not in text, f"{path.name} mentions {sub}"


def test_the_public_packages_are_what_it_uses():
    source = SOURCE.read_text(encoding="utf-8")
    assert "from tinytorch.compression import" in source and "from tinytorch.quantization import" in source
    assert benchmark.compressed_size is tinytorch.compression.compressed_size
    assert benchmark.QuantizedLayer is tinytorch.quantization.QuantizedLayer
    assert variants.prune_and_quantize is tinytorch.compression.prune_and_quantize
    assert variants.remove_pruned_units is tinytorch.compression.remove_pruned_units
