"""The source seam: every registered source is complete, and building the DAG stays light."""

import inspect
import os
import re
import subprocess
import sys

import pytest
import yaml

from omicslake.sources import SOURCES
from omicslake.sources.base import ChunkedSource, Source
from tests.conftest import REPO
from tests.sources import conftest as contract_fixtures

LUNG = {"name": "lung", "organism": "homo_sapiens", "obs_value_filter": "tissue_general == 'lung'"}


def nav_pages() -> list[str]:
    """The pages named in mkdocs.yml's nav, at any depth."""

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        items = node.values() if isinstance(node, dict) else node
        return [page for item in items for page in pages(item)]

    return pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])


@pytest.fixture(scope="module")
def rules() -> set[str]:
    out = subprocess.run(
        [str(REPO / ".venv/bin/snakemake") if (REPO / ".venv").exists() else "snakemake", "--list-rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_registered_source_has_its_contract_schema_rules_docs_page_tests_and_stand_in(source, rules):
    spec = SOURCES[source]
    contract, functions = (ChunkedSource, ("chunks", "plan_chunk")) if spec.chunked else (Source, ("plan",))
    for function in ("datasets", "probe", *functions):
        expected = inspect.signature(getattr(contract, function)).parameters
        got = inspect.signature(getattr(spec.module, function)).parameters
        assert list(got) == [p for p in expected if p != "self"], f"{source}.{function}{tuple(got)}"
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert source in schema["properties"]["sources"]["properties"], f"config/schema.yaml has no sources.{source}"
    assert {f"probe_{source}", f"ingest_{source}"} <= rules
    if spec.chunked:
        assert {f"chunks_{source}", f"ingest_{source}_chunk"} <= rules
    assert (REPO / "docs" / "sources" / f"{source}.md").exists(), f"docs/sources/{source}.md is missing"
    assert f"sources/{source}.md" in nav_pages(), f"mkdocs.yml's nav does not name sources/{source}.md"
    assert (REPO / "tests" / f"test_{source}.py").exists()
    assert hasattr(contract_fixtures, f"{source}_upstream"), f"tests/sources/conftest.py has no {source}_upstream"
    assert (REPO / spec.conda).exists()


@pytest.mark.slow  # a Snakemake run
def test_building_the_dag_imports_neither_dlt_nor_pyarrow(tmp_path):
    """`snakemake -n` of the real Snakefile with dlt, pyarrow and duckdb made unimportable."""
    from tests.conftest import workflow_config

    config = workflow_config(
        tmp_path,
        {
            "http": [{"name": "a", "url": "file:a.csv"}],
            "geo": {"base_url": "ftp://127.0.0.1:9/geo", "series": ["GSE1"], "platforms": ["GPL2"]},
            "cellxgene": {"census_uri": str(tmp_path / "census"), "queries": [LUNG]},
        },
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    blocked = """
import runpy, sys
class Heavy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dlt", "pyarrow", "duckdb"):
            raise ImportError(f"building the DAG imported {name}")
sys.meta_path.insert(0, Heavy())
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__")
"""
    args = ["--snakefile", str(REPO / "Snakefile"), "--configfile", "config.yaml", "--replace-workflow-config", "-n"]
    result = subprocess.run(
        [sys.executable, "-c", blocked, *args, "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "probe_geo" in result.stdout and "probe_cellxgene" in result.stdout


@pytest.mark.slow  # a Snakemake run
def test_a_dry_run_plans_only_the_probes(tmp_path):
    """Which datasets load is known after the probes: the first DAG is one probe per source."""
    from tests.conftest import run_snakemake, workflow_config

    http = [{"name": f"t{i}", "url": f"http://127.0.0.1:9/t{i}.csv"} for i in range(20)]
    geo = {"base_url": "ftp://127.0.0.1:9/geo", "series": ["GSE1", "GSE2"]}
    cellxgene = {"census_uri": str(tmp_path / "census"), "queries": [LUNG]}
    result = run_snakemake(
        tmp_path, workflow_config(tmp_path, {"http": http, "geo": geo, "cellxgene": cellxgene}), "-n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = dict(re.findall(r"^(\w+) +(\d+)$", result.stdout, re.M))  # the "Job stats" table
    assert stats == {
        "probe_cellxgene": "1",
        "probe_geo": "1",
        "probe_http": "1",
        "report": "1",
        "all": "1",
        "total": "5",
    }
    assert not (tmp_path / "staging").exists()  # a dry run asks no server anything


@pytest.mark.slow
def test_a_failed_probe_holds_back_only_its_own_source(tmp_path, geo_tree):
    from tests.conftest import Lake, run_snakemake, workflow_config

    (tmp_path / "mirror.csv").write_text("a,b\n1,2\n")
    sources = {
        "http": [{"name": "table", "url": f"file://{tmp_path}/mirror.csv"}],
        "geo": {"base_url": f"file://{geo_tree}", "platforms": ["GPL97"]},
    }
    (tmp_path / "staging" / "http" / "table" / "stamp.json").mkdir(parents=True)  # the probe cannot write it
    result = run_snakemake(tmp_path, workflow_config(tmp_path, sources))
    assert result.returncode != 0 and "Error in rule probe_http" in result.stderr
    lake = Lake(tmp_path)
    assert lake.query("SELECT count(*) FROM lake.geo.platform_probes") == [(42,)]  # geo loaded all the same
    assert lake.query("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'http'") == [(0,)]


def test_config_checks_import_nothing_of_the_sources_and_each_source_imports_alone():
    """No import cycle: `config` imports (anywhere in it) only `errors` of the package; any source
    module can be imported first."""
    import ast

    tree = ast.parse((REPO / "omicslake" / "config.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {name for name in imported if name and name.startswith("omicslake")} == {"omicslake.errors"}
    for source in sorted(SOURCES):
        module = SOURCES[source].module.__name__
        run = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=REPO)
        assert run.returncode == 0, run.stderr
