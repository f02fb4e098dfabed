"""The real workflow, run as `snakemake` subprocesses on temp configs, queried through ATTACH."""

import gzip
import shutil

import pytest

from omicslake.catalog import connect
from tests.conftest import REPO, run_snakemake, workflow_config

DEMO = REPO / "demo" / "data"


def attach(workdir):
    con = connect()
    con.execute(
        f"ATTACH 'ducklake:{workdir}/lake/omicslake.ducklake' AS lake (DATA_PATH '{workdir}/lake/data/', READ_ONLY)"
    )
    return con


@pytest.mark.slow
def test_workflow_over_http_loads_good_datasets_and_reports_bad_ones(http_server, tmp_path):
    good = [
        {
            "name": "gene_info",
            "url": http_server.add("/gene/gene_info.tsv.gz", (DEMO / "gene_info.tsv.gz").read_bytes()),
            "null_values": ["", "-"],
        },
        {"name": "samples", "url": http_server.add("/samples.csv", (DEMO / "samples.csv").read_bytes())},
        {
            "name": "expression",
            "url": http_server.add("/expr/expression.jsonl", (DEMO / "expression.jsonl").read_bytes(), fail=[500]),
        },
    ]
    truncated = gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i * 7919 % 10007, i) for i in range(50000)))[:-5]
    bad = [
        {"name": "missing", "url": http_server.url("/nope.tsv")},
        {"name": "malformed", "url": http_server.add("/bad.csv", b"a,b\n1,2\n3,4,5\n")},
        {"name": "truncated", "url": http_server.add("/cut.csv.gz", truncated)},
        {"name": "bad_checksum", "url": http_server.add("/ok.csv", b"a\n1\n"), "sha256": "0" * 64},
    ]
    result = run_snakemake(tmp_path, workflow_config(tmp_path, {"http": good + bad}))
    assert result.returncode != 0  # bad datasets fail ...
    con = attach(tmp_path)  # ... the good ones are in the lake all the same
    tp53 = con.execute("""
        SELECT g.gene_id, s.tissue, e.tpm FROM lake.http.expression e
        JOIN lake.http.gene_info g USING (symbol) JOIN lake.http.samples s USING (sample_id)
        WHERE g.symbol = 'TP53' AND s.sample_id = 'S01'""").fetchall()
    assert len(tp53) == 1 and tp53[0][:2] == (7157, "liver")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'http'").fetchall()}
    assert tables == {"gene_info", "samples", "expression"}
    expected = {
        "missing": "http.missing: http://127.0.0.1:{}/nope.tsv: HTTP 404",
        "malformed": "http.malformed: bad.csv: malformed csv: CSV parse error: Row #3: Expected 2 columns, got 3",
        "truncated": "http.truncated: cut.csv.gz: cannot read file (truncated or corrupt?)",
        "bad_checksum": "http.bad_checksum: http://127.0.0.1:{}/ok.csv: sha256 mismatch",
    }
    for name, message in expected.items():
        log = (tmp_path / "logs" / "ingest" / "http" / f"{name}.log").read_text()
        assert message.format(http_server.port) in log, log
        assert "Traceback" not in log
        assert not (tmp_path / "staging" / "http" / name / "manifest.json").exists()
    snapshots = con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0]
    con.close()

    rerun = run_snakemake(tmp_path, workflow_config(tmp_path, {"http": good}))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    con = attach(tmp_path)
    assert con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0] == snapshots
    assert con.execute("SELECT count(*) FROM lake.http.gene_info").fetchone()[0] == 20
    log = (tmp_path / "logs" / "ingest" / "http" / "gene_info.log").read_text()
    assert "upstream unchanged" in log
    assert http_server.hits("/gene/gene_info.tsv.gz")[-1]["status"] == 304


@pytest.mark.slow
def test_demo_config_runs_offline(tmp_path):
    shutil.copytree(DEMO, tmp_path / "demo" / "data")
    shutil.copy(REPO / "config" / "demo.yaml", tmp_path / "demo.yaml")
    config = (tmp_path / "demo.yaml").read_text()
    result = run_snakemake(tmp_path, __import__("yaml").safe_load(config))
    assert result.returncode == 0, result.stderr[-3000:]
    con = connect()
    con.execute(
        f"ATTACH 'ducklake:{tmp_path}/results/demo/lake/omicslake.ducklake' AS lake "
        f"(DATA_PATH '{tmp_path}/results/demo/lake/data/', READ_ONLY)"
    )
    rows = con.execute("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)").fetchone()
    assert rows == (30,)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sources": {"http": [{"name": "a", "url": "file:x.csv", "colour": "red"}]}}, "'colour' was unexpected"),
        ({"download": {"retries": "many"}}, "instance['download']['retries']"),
        ({"staging": "results/50%/"}, "instance['staging']"),
        ({"sources": {"http": [{"name": "Bad-Name", "url": "file:x.csv"}]}}, "instance['sources']['http'][0]['name']"),
        (
            {"sources": {"http": [{"name": "a", "url": "file:x.csv"}, {"name": "a", "url": "file:y.csv"}]}},
            "config key sources.http[1].name: duplicate table name 'a'",
        ),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, config, message):
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Job stats" not in result.stdout + result.stderr  # stopped before planning any job
