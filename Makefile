# mailpacer — set-up and everyday commands. Everything runs inside .venv, made on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

## make demo: create the virtualenv, install, run the main job on the embedded default
demo: $(STAMP)
	$(BIN)/mailpacer demo

## make test: install what the tests need and run the whole suite (slow tests included)
test: $(STAMP)
	$(BIN)/python -m pytest

## make lint: ruff (format check + lint) and mypy --strict on src/
lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## make bench: every benchmark under bench/, results to print (record them in BENCHMARKS.md)
bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
