"""Shared test settings: headless rendering, and the OMNITASK_FULL switch for long learning runs."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# Persistent XLA compilation cache shared by the test process and the CLI subprocesses it starts: the same jitted
# learner/eval functions are compiled by many tests (and by every resumed run), so compile once per suite.
_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax-cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import pytest  # noqa: E402

FULL = os.environ.get("OMNITASK_FULL") == "1"


@pytest.fixture
def full_budget() -> bool:
    """True when long-form learning budgets are requested (make test-full)."""
    return FULL
