# The two commands of the README:
#   make demo   set up .venv from requirements.lock, run the workflow offline on every source (demo/run.py)
#   make test   set up .venv, run lint (ruff, snakefmt, snakemake --lint) and the whole test suite
# setup installs with uv (pip installs uv into the venv first): the lock's ~190 wheels in ~25 s, where pip took
# minutes; uv reads no pip config: behind a package mirror set UV_INDEX_URL (or UV_EXTRA_INDEX_URL, UV_FIND_LINKS).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python

.PHONY: demo test lint setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --disable-pip-version-check uv==0.13.9
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .
	touch $@

# Bytecode of the whole venv, as pip compiles it at install and uv does not (a minute on 2 cores): the
# suite starts hundreds of Python processes, none of which may cache it when PYTHONDONTWRITEBYTECODE is set.
$(VENV)/.compiled: $(VENV)/.installed
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	touch $@

# The demo compiles only what its jobs import, once: PYTHONDONTWRITEBYTECODE empty lets them cache it.
demo: setup
	PYTHONDONTWRITEBYTECODE= $(BIN)/python demo/run.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: lint $(VENV)/.compiled
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

clean:
	rm -rf results .snakemake
