# The two commands of the README:
#   make demo   set up .venv from requirements.lock, run the workflow offline on demo/data, query the lake
#   make test   set up .venv, run lint (ruff, snakefmt, snakemake --lint) and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_QUERY := SELECT g.symbol, g.chromosome, s.tissue, s.condition, e.tpm \
	FROM lake.http.expression e JOIN lake.http.gene_info g USING (symbol) \
	JOIN lake.http.samples s USING (sample_id) WHERE g.symbol = 'TP53' ORDER BY s.sample_id

.PHONY: demo test lint setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(BIN)/snakemake --configfile config/demo.yaml --replace-workflow-config
	$(BIN)/omicslake --config config/demo.yaml query "$(DEMO_QUERY)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

clean:
	rm -rf results .snakemake
