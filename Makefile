# The two commands of the README:
#   make demo   set up .venv from requirements.lock, run the workflow offline on every source (demo/run.py)
#   make test   set up .venv, run lint (ruff, snakefmt, snakemake --lint, the docs' mkdocs build --strict) and the whole test suite
# setup installs with uv (pip installs uv into the venv first): the lock's ~190 wheels in ~25 s, where pip took
# minutes; uv reads no pip config: behind a package mirror set UV_INDEX_URL (or UV_EXTRA_INDEX_URL, UV_FIND_LINKS).
# --compile-bytecode: as pip does, so that no job compiles its imports anew (clusters often set
# PYTHONDONTWRITEBYTECODE; a job that compiles dlt and pyarrow takes twice as long).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

.PHONY: demo test lint docs setup clean profile

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --disable-pip-version-check uv==0.13.9
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .
	$(BIN)/python -m compileall -q omicslake
	touch $@

demo: setup
	$(BIN)/python demo/run.py

lint: setup docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

# The reference (docs/, mkdocs.yml) as a site in .site/; --strict: a broken link or anchor, or a page
# missing from mkdocs.yml's nav, fails the build (and so `make test`); not --quiet: it hides the
# warnings from --strict, and the build passes.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site

# Two workers, a test file each at a time (pytest-xdist's loadfile: a file's module-scoped SLURM cluster,
# census or server stays up for all its cases): 24 min for the whole suite on 2 cores, 35 min serially.
test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 --dist loadfile

# The edit loop: every case not marked slow (no Snakemake run of the workflow, no SLURM, no browser, no
# S3 or PostgreSQL server), on two workers.
test-fast: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m "not slow" -n 2

# `snakemake --profile slurm` finds profiles in the current folder, ~/.config/snakemake and
# /etc/xdg/snakemake, not in profiles/: link this clone's SLURM profile into the user's (once).
PROFILES := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
profile:
	@mkdir -p "$(PROFILES)"
	@if [ -e "$(PROFILES)/slurm" ] && [ "$$(readlink "$(PROFILES)/slurm")" != "$(CURDIR)/profiles/slurm" ]; then \
	  echo "$(PROFILES)/slurm exists and is not this clone's profile: left as it is (use --profile profiles/slurm)"; \
	  exit 1; fi
	ln -sfn "$(CURDIR)/profiles/slurm" "$(PROFILES)/slurm"

clean:
	rm -rf results .snakemake .site
