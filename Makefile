# Fresh machine: `make demo` (set up, then run the whole pipeline offline); `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Stage commands call `python`: make it the environment's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup setup-s3 demo repro test test-fast lint format report plots exps clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Optional S3 support for a DVC remote (and the local S3 server its test uses).
setup-s3: setup
	$(BIN)/pip install --quiet -r requirements-s3.txt

# Ends by comparing the run with the committed one: equal on CPUs like the one that made it.
demo: setup
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show
	@changes="$$($(BIN)/dvc metrics diff --precision 4)"; \
	if [ -z "$$changes" ]; then \
		echo "Same metrics as the committed run (dvc metrics diff is empty): reproduced exactly."; \
	else \
		echo "$$changes"; \
		echo "These metrics differ slightly from the committed run, so git status shows changes:"; \
		echo "expected on a CPU of another family (see docs/reproducibility.md)."; \
	fi

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/pytest

# The fast loop (under a minute): everything but DVC runs, stage scripts and training.
test-fast: setup
	$(BIN)/pytest -m "not slow"

# Lint and format check with the pinned ruff (rules in pyproject.toml), and zizmor's static analysis
# of the GitHub Actions workflows; `make format` fixes what ruff can.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/zizmor --offline --quiet .github/workflows/

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

# DVC's plots page (dvc_plots/index.html) that renders offline: the workspace, or against REV if given.
export REV
plots: setup
	$(BIN)/segpipe plots $${REV:+"$$REV"}

# The experiments side by side, best test mean IoU first, in 120 columns (docs/experiments.md): `dvc exp show`
# without file hashes, paths.* params, per-class scores and params that every experiment shares.
exps: setup
	$(BIN)/segpipe exps
