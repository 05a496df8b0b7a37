# The two set-up commands of the README: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check --constraint constraints.txt

.PHONY: demo test install-demo install-dev lint bench

install-demo:
	$(PIP) torch==2.13.0
	$(PIP) -e '.[demo]'

install-dev:
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'

demo: install-demo
	$(PYTHON) examples/digits.py

test: install-dev
	$(PYTHON) -m pytest -q

lint: install-dev
	$(PYTHON) -m ruff check src tests benchmarks examples
	$(PYTHON) -m ruff format --check src tests benchmarks examples
	$(PYTHON) -m mypy

bench: install-dev
	$(PYTHON) -m benchmarks.run
