# mailpacer — set-up and everyday commands. Everything runs inside .venv, made on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

.PHONY: demo test lint bench clean postgres browser test-postfix

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

## make demo: create the virtualenv, install, run the main job on the embedded default
demo: $(STAMP)
	$(BIN)/mailpacer demo

## make test: install what the tests need, start PostgreSQL if needed, run the whole suite
test: $(STAMP) postgres browser
	$(BIN)/python -m pytest

## make browser: the dashboard's browser tests drive Debian's Chromium (Playwright comes with the
## test extra; its own browser download is not used): installed with apt-get when missing, as root
browser:
	@if [ -x /usr/bin/chromium ] && [ -e $(CJK_FONT) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make: /usr/bin/chromium or Noto CJK is missing; as root: apt-get install -y chromium fonts-noto-cjk" \
			"(the browser tests will fail)" >&2; exit 0; fi; \
	echo "installing chromium and fonts-noto-cjk with apt-get"; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk

## make postgres: the PostgreSQL server the tests use (127.0.0.1:5432, database `test`, trust from
## 127.0.0.1): installed with apt-get when missing and root, cluster created, started, database made
## (scripts/test-postgres.sh; DRY_RUN=1 shows what it would do). MAILPACER_TEST_PG: left alone.
postgres:
	@sh scripts/test-postgres.sh

## make test-postfix: opt-in, never in CI — a real Debian Postfix (installed with apt-get when
## missing; needs root) on 127.0.0.1 with anvil limits, 600 messages told nothing
test-postfix: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -s -m postfix tests/integration/test_postfix.py

## make lint: ruff (format check + lint), mypy --strict on src/, and the import-layering contract
## (pyproject.toml [tool.importlinter]: a lower layer importing a higher one fails; no cycles)
lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## make bench: every benchmark under bench/, results to print (record them in BENCHMARKS.md)
bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis test-output
