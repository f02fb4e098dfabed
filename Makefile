# The two commands of the README:
#   make demo   set up .venv from requirements.lock, run the workflow offline on every source (demo/run.py)
#   make test   set up .venv, run lint (ruff, snakefmt, snakemake --lint) and the whole test suite
# setup installs with uv (pip installs uv into the venv first): the lock's ~190 wheels in seconds, not minutes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python

.PHONY: demo test lint setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --disable-pip-version-check uv
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .
	touch $@

demo: setup
	$(BIN)/python demo/run.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

clean:
	rm -rf results .snakemake
