# omnitask: `make demo` (main job on the embedded default config) and `make test` (the test suite).
# Both create .venv with Python 3.11 and install the project with every extra if needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnitask-installed

.PHONY: install demo test test-full bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/omnitask train configs/quickstart.yaml

test: $(STAMP)
	OMNITASK_REQUIRE_EXTRAS=1 MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/pytest -q

# Long forms of the learning tests (the paper-sized budgets where they fit on a CPU).
test-full: $(STAMP)
	OMNITASK_FULL=1 MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/pytest -q

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
