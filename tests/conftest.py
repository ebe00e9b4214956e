"""Shared test settings: headless rendering, and the OMNITASK_FULL switch for long learning runs."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# Persistent XLA compilation cache shared by the test process and the CLI subprocesses it starts: the same jitted
# learner/eval functions are compiled by many tests (and by every resumed run), so compile once per suite.
_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax-cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import importlib  # noqa: E402

import pytest  # noqa: E402

FULL = os.environ.get("OMNITASK_FULL") == "1"
# The `compat` extra (Stable-Baselines3 + torch: clients of the gymnasium views) is not part of `all`: its tests skip
# where it is absent, and fail instead with OMNITASK_REQUIRE_COMPAT=1 (set by `make test-full`, which installs it).
REQUIRE_COMPAT = os.environ.get("OMNITASK_REQUIRE_COMPAT") == "1"


def import_compat(module: str):
    """Import a module of the `compat` extra; skip without it (fail when OMNITASK_REQUIRE_COMPAT=1)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if REQUIRE_COMPAT:
            pytest.fail(f"OMNITASK_REQUIRE_COMPAT=1 and the compat extra is missing ({err}); make install-compat",
                        pytrace=False)
        pytest.skip(f"compat extra not installed ({err.name}): make install-compat")


@pytest.fixture
def full_budget() -> bool:
    """True when long-form learning budgets are requested (make test-full)."""
    return FULL


# `make test` installs every extra, so a test skipped because an import failed is a broken install, not an optional
# feature: with OMNITASK_REQUIRE_EXTRAS=1 (set by the Makefile) such skips -- pytest.importorskip at module level
# or inside a test -- are reported as failures. Other skips (e.g. long forms behind OMNITASK_FULL) stay skips.
REQUIRE_EXTRAS = os.environ.get("OMNITASK_REQUIRE_EXTRAS") == "1"


def _missing_import(report) -> bool:
    return report.skipped and "could not import" in str(report.longrepr)


def _fail_missing_import(report) -> None:
    if REQUIRE_EXTRAS and _missing_import(report):
        report.outcome = "failed"
        report.longrepr = f"OMNITASK_REQUIRE_EXTRAS=1 and an extra is missing: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_import(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_import(outcome.get_result())


# XLA:CPU registers every compiled kernel's unwind tables with libgcc; libgcc before 13 (Debian 12, this project's
# machines) keeps them in a list that every later free walks, and py-spy caught long-running test processes inside
# that walk. Dropping JAX's in-memory caches after each test module keeps the list short (compiles that took >= 0.5 s
# are reloaded from the persistent compilation cache above; shorter ones are recompiled).
@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_executables_after_module():
    yield
    if os.environ.get("OMNITASK_KEEP_JAX_CACHES") != "1":
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
