"""The http source: tables from http(s) and file: URLs, through the real workflow."""

import gzip

import pytest

from tests.conftest import REPO, probe_report, run_snakemake, started_jobs, workflow_config
from tests.test_workflow import attach

DEMO = REPO / "demo" / "data"


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
    # on the console: one line per failed attempt (a job is retried), naming the dataset, the cause and the fix
    console = [line for line in result.stderr.splitlines() if line.startswith("omicslake: ")]
    assert {line.split(": ")[1] for line in console} == {f"http.{name}" for name in expected}, console
    assert all("; fix: " in line for line in console), console
    snapshots = con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0]
    con.close()

    rerun = run_snakemake(tmp_path, workflow_config(tmp_path, {"http": good}))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    con = attach(tmp_path)
    assert con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0] == snapshots
    assert con.execute("SELECT count(*) FROM lake.http.gene_info").fetchone()[0] == 20
    assert "rule ingest_http" not in rerun.stderr and "rule register" not in rerun.stderr  # no job: one probe
    assert probe_report(tmp_path, "http") == {
        "gene_info": "unchanged",
        "samples": "unchanged",
        "expression": "unchanged",
    }
    assert http_server.hits("/gene/gene_info.tsv.gz")[-1]["status"] == 304  # the probe's conditional GET
    con.close()

    http_server.add("/samples.csv", (DEMO / "samples.csv").read_bytes() + b"S99,brain,control,40,30.5\n")
    changed = run_snakemake(tmp_path, workflow_config(tmp_path, {"http": good}))
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert started_jobs(changed) == [("ingest_http", "samples"), ("register", "samples")]
    con = attach(tmp_path)
    assert con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0] == snapshots + 1
    assert con.execute("SELECT count(*) FROM lake.http.samples WHERE sample_id = 'S99'").fetchone() == (1,)
