# The two set-up commands of the README: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## Run the workflow on the embedded demo archive (results/ and results/html/index.html).
demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES)

## Install what the tests need and run the whole suite.
test: $(VENV)/.installed
	bash tests/setup_system.sh
	$(BIN)/python -m pytest -q -rs

## Style and workflow checks (also part of the test suite).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/python -m pytest -q tests/test_lint.py

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf results .snakemake demo
