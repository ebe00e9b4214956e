# omnitask: `make demo` (main job on the embedded default config) and `make test` (the test suite).
# Both create .venv with Python 3.11 and install the project with every extra if needed, at the exact versions of
# requirements.lock (the ones the test suite passed with). After changing pyproject.toml's ranges:
# `make upgrade test lock` installs the newest allowed versions, tests them and records them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnitask-installed
LOCK := requirements.lock

.PHONY: install install-compat demo test test-full bench lock upgrade clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

# Stable-Baselines3 + torch (the `compat` extra, not in `all`): a real gymnasium client for envs.as_gymnasium.
install-compat: $(STAMP)
	$(PY) -m pip install -q -c $(LOCK) -e ".[all,compat]"

demo: $(STAMP)
	$(VENV)/bin/omnitask train configs/quickstart.yaml

# Two pytest workers (pytest-xdist), whole files per worker: the suite is mostly single-threaded XLA compiles, and
# each worker process also keeps fewer compiled executables alive (see tests/conftest.py).
TEST_WORKERS ?= 2

test: $(STAMP)
	OMNITASK_REQUIRE_EXTRAS=1 MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# Long forms of the learning tests (the paper-sized budgets where they fit on a CPU), and the compat-extra tests.
test-full: install-compat
	OMNITASK_FULL=1 OMNITASK_REQUIRE_COMPAT=1 MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Record the versions installed in .venv (run after `make test` passed).
lock:
	$(PY) tools/lock.py all $(LOCK)

upgrade:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -e ".[all]"

clean:
	rm -rf $(VENV) runs .pytest_cache
