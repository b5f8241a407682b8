# Fresh machine: `make demo` (set up, then run the whole pipeline offline); `make test` (the test suite).
VENV := .venv
BIN := $(VENV)/bin
# Where tools/find-python looks: the PATH make was started with, less .venv's own Python.
export SEARCH_PATH := $(subst $(abspath $(BIN)):,,$(PATH))
# Stage commands call `python`: make it the environment's.
export PATH := $(abspath $(BIN)):$(PATH)
# The locks of the environment's Python version (requirements/py3.X/), found when a recipe runs.
LOCKS = requirements/py$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# A lock is installed as it is, each file checked against its hash, and anything built from source
# is built by the locked setuptools (build.txt, installed first), not by one fetched unhashed for
# build isolation; `pip check` then proves the set consistent.
PIP_INSTALL_LOCK = $(BIN)/pip install --quiet --require-hashes --no-deps --no-build-isolation

.PHONY: setup setup-s3 setup-gpu lock lock-check demo repro test test-fast lint format report plots exps clean

setup: $(VENV)/.installed

# A new .venv (--clear: nothing of an older lock stays) with the newest supported Python, or PYTHON
# (tools/find-python says which), the locks of its version, then the package itself.
$(VENV)/.installed: pyproject.toml $(wildcard requirements/py*/build.txt \
		requirements/py*/runtime.txt requirements/py*/dev.txt)
	python="$$(PATH="$$SEARCH_PATH" tools/find-python)" && "$$python" -m venv --clear $(VENV)
	locks=$(LOCKS) && $(PIP_INSTALL_LOCK) -r $$locks/build.txt && \
		$(PIP_INSTALL_LOCK) -r $$locks/runtime.txt -r $$locks/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

# Optional S3 support for a DVC remote (and the local S3 server its test uses).
setup-s3: $(VENV)/.installed-s3

$(VENV)/.installed-s3: $(VENV)/.installed $(wildcard requirements/py*/s3.txt)
	$(PIP_INSTALL_LOCK) -r $(LOCKS)/s3.txt
	$(BIN)/pip check
	touch $@

# TensorFlow's CUDA libraries, for an NVIDIA GPU (Linux).
setup-gpu: setup
	$(PIP_INSTALL_LOCK) -r $(LOCKS)/gpu.txt
	$(BIN)/pip check

# Regenerates every lock from requirements/*.in for each supported Python, with the pinned uv (see
# requirements/dev.in): one universal resolution per lock, for every supported platform at once
# (Linux x86-64 and aarch64, macOS arm64; gpu.txt Linux only), each line with its environment
# marker and its files' hashes, whatever machine runs it. A lock that exists is kept where it still
# fits (uv prefers its versions): delete it to resolve from scratch. See tools/lock.py.
LOCK_PYTHONS := 3.11 3.12 3.13
lock: setup
	$(BIN)/python tools/lock.py $(LOCK_PYTHONS)

# Proves with pip that each version's locks resolve, as they are and from wheels, on each supported
# platform, for Pythons and platforms this machine need not have (pip's --python-version and
# --platform resolution; nothing is installed): see the script.
lock-check: setup
	$(BIN)/python tools/lock_check.py $(LOCK_PYTHONS)

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
# of the GitHub Actions workflows; `make format` fixes what ruff can. Both use .venv-lint, which holds
# the linters alone (requirements/py3.X/lint.txt), so that they run in seconds on a fresh clone.
LINT_VENV := .venv-lint
lint: $(LINT_VENV)/.installed
	$(LINT_VENV)/bin/ruff check .
	$(LINT_VENV)/bin/ruff format --check .
	$(LINT_VENV)/bin/zizmor --offline --quiet .github/workflows/

format: $(LINT_VENV)/.installed
	$(LINT_VENV)/bin/ruff check --fix .
	$(LINT_VENV)/bin/ruff format .

$(LINT_VENV)/.installed: $(wildcard requirements/py*/lint.txt)
	python="$$(PATH="$$SEARCH_PATH" FIND_PYTHON_FOR="make lint" tools/find-python)" && \
		"$$python" -m venv --clear $(LINT_VENV)
	version=$$($(LINT_VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') && \
		$(LINT_VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/py$$version/lint.txt
	touch $@

clean:
	rm -rf $(VENV) $(LINT_VENV)

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
