# The two set-up commands of the README: `make demo` and `make test`. Both work on a fresh machine,
# including one whose python3 refuses system-wide installs (PEP 668): everything goes into a
# project-local virtual environment, .venv/ (VENV=path to use another one).
PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
PIP := $(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check --constraint constraints.txt

.PHONY: demo test install-demo install-dev lint bench

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

install-demo: $(VENV_PYTHON)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[demo]'

install-dev: $(VENV_PYTHON)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'

demo: install-demo
	$(VENV_PYTHON) examples/digits.py

test: install-dev
	@./scripts/ensure-postgresql.sh
	$(VENV_PYTHON) -m pytest -q

lint: install-dev
	$(VENV_PYTHON) -m ruff check src tests benchmarks examples
	$(VENV_PYTHON) -m ruff format --check src tests benchmarks examples
	$(VENV_PYTHON) -m mypy

bench: install-dev
	$(VENV_PYTHON) -m benchmarks.run
