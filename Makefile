# The two commands of the README: `make demo` (main job) and `make test` (test suite).
# Each creates or reuses the project-local virtual environment .venv and installs the
# plugin there in editable mode with its test, copick and reliontomo extras. Nothing else needs installing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cryoprocs-installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: venv test demo bench clean-venv

venv: $(STAMP)

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools>=65" wheel
	$(PY) -m pip install --quiet -e ".[test,copick,reliontomo]"
	@touch $(STAMP)

# pytest exits 5 when no test ran: make treats that as a failure.
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/cryoprocs demo $(DEMO_ARGS)

bench: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
