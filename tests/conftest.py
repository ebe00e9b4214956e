"""Shared test settings: headless rendering, and the OMNITASK_FULL switch for long learning runs."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import pytest  # noqa: E402

FULL = os.environ.get("OMNITASK_FULL") == "1"


@pytest.fixture
def full_budget() -> bool:
    """True when long-form learning budgets are requested (make test-full)."""
    return FULL
