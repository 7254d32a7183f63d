# The Makefile runs what CI runs. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
XDIST ?= 4

.PHONY: venv lint test test-fast run clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/ruff format --check src tests examples
	$(VENV)/bin/mypy

# the whole suite on SQLite, PostgreSQL and MariaDB (servers that don't answer skip, except under CI)
test: lint
	$(PY) -m pytest -n $(XDIST) -q

# the inner loop: no lint, no slow process tests, stop at the first failure
test-fast: venv
	$(PY) -m pytest -n $(XDIST) -q -x -m "not slow"

run: venv
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) errands.db errands.db-* logs .pytest_cache .mypy_cache .ruff_cache
