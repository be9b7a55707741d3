# The two set-up commands of the README: `make demo` and `make test`. Both install first.
# They install into .venv here, or into the virtualenv that is already active (CI keeps one
# outside the clone so that torch is installed once per machine).
PYTHON ?= python3
VENV := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
BIN := $(VENV)/bin
# Keyed by this checkout's path: an editable install points at one checkout.
STAMP := $(VENV)/.ringscope-$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)

.PHONY: install demo test lint typecheck

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ringscope neo4j build
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/ringscope demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports   # the layers and the one namespace: pyproject.toml [tool.importlinter]

typecheck: install
	$(BIN)/mypy
