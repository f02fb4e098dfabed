"""The real workflow, run as `snakemake` subprocesses on temp configs: the demo, config checks."""

import os
import re
import shutil
from pathlib import Path

import pytest

from omicslake.catalog import connect, open_lake
from tests.conftest import REPO, Lake, demo_http_config, run_snakemake, started_jobs, workflow_config

pytestmark = pytest.mark.slow  # Snakemake runs of the workflow: not in `make test-fast`

DEMO = REPO / "demo" / "data"


def attach(workdir):
    con = connect()
    con.execute(
        f"ATTACH 'ducklake:{workdir}/lake/omicslake.ducklake' AS lake (DATA_PATH '{workdir}/lake/data/', READ_ONLY)"
    )
    return con


def test_demo_runs_every_source_offline_and_shows_its_deliberate_failure(tmp_path):
    """`make demo` end to end in a copy of the repository: stand-ins on 127.0.0.1, every source,
    `omicslake status` naming the failed dataset and its cause, the cross-source query, the report."""
    import subprocess
    import sys

    skip = shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "artifacts", "bench")
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=skip)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "demo/run.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    status = out[out.index("== omicslake status") : out.index("== one query")]
    for dataset in ("cellxgene.lung", "geo.GSE781", "geo.GDS507", "geo.GPL97", "http.gene_info",
                    "kaggle.drug_targets", "s3.rnaseq_counts", "zenodo.rcc_cohort"):  # fmt: skip
        assert re.search(rf"^  {re.escape(dataset)} +registered ", status, re.M), status
    assert re.search(r"^  http\.broken_on_purpose +failed", status, re.M), status
    assert re.search(
        r"^  http\.broken_on_purpose: ingest_http at .*: broken_on_purpose\.csv: malformed csv: ", status, re.M
    )
    assert "staging leftovers: none" in status  # a chunked dataset's dlt state is not one
    query = out[out.index("== one query") : out.index("== the run report")]
    assert re.search(r"│ EGFR +│ +7 │ epidermal growth factor receptor .*erlotinib \(target\), gefitinib", query), query
    assert (repo / "results" / "demo" / "report.html").stat().st_size > 10_000
    assert f"report: {repo / 'results' / 'demo' / 'report.html'}" in out


def test_demo_config_runs_offline(tmp_path):
    """The sample tables of demo/data (no stand-in needed): a lake that lost a table, or was
    wiped by hand, gets it back on the next run."""
    shutil.copytree(DEMO, tmp_path / "demo" / "data")
    config = demo_http_config()
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / ".snakemake/omicslake/warm.log").exists()  # the ingest jobs were handed to a warm process
    con = connect()
    con.execute(
        f"ATTACH 'ducklake:{tmp_path}/results/demo/lake/omicslake.ducklake' AS lake "
        f"(DATA_PATH '{tmp_path}/results/demo/lake/data/', READ_ONLY)"
    )
    rows = con.execute("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)").fetchone()
    assert rows == (30,)
    con.close()

    lake = Lake(tmp_path / "results" / "demo")
    with open_lake(lake.catalog, lake.data_path) as writer:
        writer.execute("DROP TABLE lake.http.samples")  # by hand, outside omicslake
    rerun = run_snakemake(tmp_path, config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert lake.query("SELECT count(*) FROM lake.http.samples") == [(6,)]  # the probe saw it gone
    probe_logs = "".join(p.read_text() for p in (tmp_path / "results/demo/logs/probe/http").glob("*.log"))
    assert "http.samples: the lake lost load" in probe_logs
    assert started_jobs(rerun) == [("ingest_http", "samples"), ("register", "samples")], rerun.stderr[-3000:]

    shutil.rmtree(tmp_path / "results" / "demo" / "lake")  # the whole lake wiped by hand
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert lake.query("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)") == [(30,)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"sources": {"http": [{"name": "a", "url": "file:x.csv", "colour": "red"}]}},
            "config key sources.http[0].colour: unknown key; fix: remove or rename it (known here: name, url,",
        ),
        (
            {"sources": {"http": [{"nmae": "a", "url": "file:x.csv"}]}},
            "config key sources.http[0].nmae: unknown key; fix: did you mean 'name'?",
        ),
        ({"download": {"retries": "many"}}, "config key download.retries: 'many' is not an integer; fix: set it to"),
        ({"staging": "results/50%/"}, "config key staging: 'results/50%/' does not match"),
        (
            {"sources": {"http": [{"name": "Bad-Name", "url": "file:x.csv"}]}},
            "config key sources.http[0].name: 'Bad-Name' does not match",
        ),
        ({"sources": {"http": [{"name": "a"}]}}, "config key sources.http[0]: 'url' is missing; fix: add url: <value>"),
        (
            {"sources": {"http": [{"name": "a", "url": "file:x.csv"}, {"name": "a", "url": "file:y.csv"}]}},
            "config key sources.http[1].name: duplicate table name 'a'",
        ),
        (
            {"sources": {"geo": {"base_url": "ftp://me:secret@ftp.example.org/geo"}}},
            "config key sources.geo.base_url: a user or password in the URL would be stored with every load; "
            "fix: set DOWNLOAD__FTP_EXAMPLE_ORG__USERNAME",
        ),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, config, message):
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Job stats" not in output  # stopped before planning any job
    # one line, the key, the cause and the fix; no traceback, no multi-line Snakemake report
    lines = [line for line in output.splitlines() if line.startswith("omicslake: ")]
    assert len(lines) == 1 and message in lines[0] and "; fix: " in lines[0], output
    assert "Traceback" not in output and "File " not in output, output


def test_a_dataset_named_probe_keeps_its_files_when_old_probe_reports_are_trimmed(tmp_path):
    """Probe reports live in `<staging>/<source>/_probes/`, outside every dataset's folder: the
    probe keeps the last 10 reports, and a dataset named `probe` keeps its stamp and manifest."""
    shutil.copy(DEMO / "samples.csv", tmp_path / "samples.csv")
    config = workflow_config(tmp_path, {"http": [{"name": "probe", "url": f"file:{tmp_path / 'samples.csv'}"}]})
    reports = tmp_path / "staging" / "http" / "_probes"
    reports.mkdir(parents=True)
    for i in range(12):  # earlier runs' reports
        (reports / f"2026010{i:02d}.json").write_text("{}")
        os.utime(reports / f"2026010{i:02d}.json", (i, i))
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert started_jobs(result) == [("ingest_http", "probe"), ("register", "probe")]
    assert len(list(reports.glob("*.json"))) == 10
    assert {p.name for p in (tmp_path / "staging" / "http" / "probe").glob("*.json")} >= {"stamp.json", "manifest.json"}
    assert Lake(tmp_path).query("SELECT count(*) FROM lake.http.probe") == [(6,)]
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0 and started_jobs(again) == [], again.stderr[-3000:]
