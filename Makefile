# Fresh machine: `make demo` (set up, then run the whole pipeline offline); `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Stage commands call `python`: make it the environment's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo repro test report clean

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

clean:
	rm -rf $(VENV)

# A markdown report (params, metrics, figures) of the workspace against BASE: report/report.md.
BASE ?= main
report: setup
	$(BIN)/python -m segpipe.report --base $(BASE) --out report
