# The two set-up commands of the README: `make demo` and `make test`. Both install first.
# They install into .venv here, or into the virtualenv that is already active (CI keeps one
# outside the clone so that torch is installed once per machine).
PYTHON ?= python3
VENV := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Keyed by this checkout's path: an editable install points at one checkout.
STAMP := $(VENV)/.ringscope-$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
SPARK_STAMP := $(STAMP)-spark

.PHONY: install spark demo test lint typecheck browser web

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ringscope neo4j build
	touch $@

install: $(STAMP)

# The rebuild's Spark engine (issue #18): the `spark` extra, pyspark with Spark's jars (~460 MB),
# for the tests and the type check; `make demo` does without it.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

spark: $(SPARK_STAMP)

demo: install
	$(BIN)/ringscope demo

test: install spark browser
	$(BIN)/python -m pytest

# The workbench's browser tests drive Debian's chromium through Playwright (Playwright's own
# browser download is unreachable here), and a test rebuilds the committed bundle with Node to
# check it matches web/'s sources. Both come from Debian's packages when missing.
browser:
	@missing=""; \
	command -v chromium >/dev/null || missing=" chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian) for the browser and bundle tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The workbench and GraphiQL bundle (web/ -> api/static/), committed so that a Python-only
# install serves it; tests/test_web_bundle.py checks the committed files match the sources.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports   # the layers and the one namespace: pyproject.toml [tool.importlinter]

typecheck: install spark
	$(BIN)/mypy
