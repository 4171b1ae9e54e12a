"""pytest plugin for the workflow tests: a module's suite, run quickly.

The workflow tests only need to know which tests fail and which pass, so property
tests draw few examples and do not shrink a failure, and tests that compare against
PyTorch skip (importing torch alone takes seconds). The modules' own runs keep the
project's profile.
"""
import sys

from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "tito-workflow", deadline=None, max_examples=8, database=None,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
)
sys.modules["torch"] = None  # `pytest.importorskip("torch")` now skips
