# Fresh machine: `make demo` (set up, then run the whole pipeline offline); `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Stage commands call `python`: make it the environment's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo repro test test-fast lint format report clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: setup
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/pytest

# The fast loop (under a minute): everything but DVC runs, stage scripts and training.
test-fast: setup
	$(BIN)/pytest -m "not slow"

# Lint and format check with the pinned ruff (rules in pyproject.toml); `make format` fixes what it can.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV)

# A markdown report (params, metrics, figures) of the workspace against BASE: report/report.md.
# BASE reaches the command through the environment, never through the shell's parsing.
BASE ?= main
export BASE
report: setup
	$(BIN)/segpipe report --base "$$BASE" --out report
