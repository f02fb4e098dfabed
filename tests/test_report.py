"""Operator visibility: `omicslake status` and the run report, read in a real headless Chromium."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from omicslake.catalog import open_lake
from tests.conftest import NO_RETRIES, REPO, run_snakemake, workflow_config

pytestmark = pytest.mark.slow  # Snakemake runs and a browser: not in `make test-fast`

ARTIFACTS = REPO / "tests" / "artifacts"  # kept after the run (git-ignored): the report's screenshot
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
# Headless on a closed network: no background connections, no sandbox (root in CI).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def omicslake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "omicslake"), "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path):
    """Two tables from the demo's samples and a third whose CSV is malformed (a ragged row)."""
    shutil.copy(REPO / "demo" / "data" / "samples.csv", tmp_path / "samples.csv")
    shutil.copy(REPO / "demo" / "data" / "expression.jsonl", tmp_path / "expression.jsonl")
    (tmp_path / "broken.csv").write_text("gene,value\nTP53,1.5\nBRCA1,2.0,extra\n")
    return tmp_path


def sources(workdir: Path) -> dict:
    names = {"samples": "samples.csv", "expression": "expression.jsonl", "broken": "broken.csv"}
    return {"http": [{"name": name, "url": f"file://{workdir}/{file}"} for name, file in names.items()]}


def test_a_failed_dataset_shows_in_status_and_in_the_report_read_in_a_browser_until_a_later_run_succeeds(workdir):
    from playwright.sync_api import sync_playwright

    config = workflow_config(workdir, sources(workdir))
    first = run_snakemake(workdir, config, "--keep-going", *NO_RETRIES)
    assert first.returncode == 1
    cause_lines = [line for line in first.stderr.splitlines() if line.startswith("omicslake: http.broken")]
    assert cause_lines and "broken.csv" in cause_lines[0]

    status = omicslake(workdir, "status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    datasets = {d["dataset"]: d for d in state["datasets"]}
    assert datasets["http.broken"]["state"] == "failed"
    assert datasets["http.broken"]["failed_step"] == "ingest_http"
    assert "broken.csv" in datasets["http.broken"]["cause"]
    assert Path(workdir, datasets["http.broken"]["log"]).exists()
    # --keep-going: the others registered in the same run
    assert (datasets["http.samples"]["state"], datasets["http.samples"]["rows"]) == ("registered", 6)
    assert (datasets["http.expression"]["state"], datasets["http.expression"]["rows"]) == ("registered", 30)
    assert {t["table"]: t["rows"] for t in state["tables"]} == {"http.expression": 30, "http.samples": 6}
    assert {s["snapshot_id"] for s in state["snapshots"]} == {
        datasets["http.samples"]["snapshot_id"],
        datasets["http.expression"]["snapshot_id"],
    }
    assert state["snapshots"][0]["rows"] == 36  # the lake after its newest snapshot

    text = omicslake(workdir, "status").stdout  # the same for a terminal
    assert "http.broken: ingest_http at" in text and "broken.csv" in text
    alias = [str(Path(sys.executable).parent / "omicslake"), "--config", str(workdir / "config.yaml"), "status"]
    assert subprocess.run(alias, cwd=workdir, capture_output=True, text=True).stdout == text  # --config: an alias

    report = run_snakemake(workdir, config, "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto((workdir / "report.html").as_uri())
        page.get_by_text("Results", exact=True).click()
        page.get_by_text("Ingest summary").first.wait_for()

        def show(label: str):
            page.locator("tr", has_text=label).locator("a[iconname=eye]").click()

        show("datasets this run")
        summary = page.frame_locator("iframe").first
        table = summary.locator("table#datasets")
        table.wait_for(state="visible")
        rows = {
            cells[1]: cells
            for cells in (row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all())
        }
        assert set(rows) == {"broken", "expression", "samples"}
        assert rows["broken"][2] == "failed" and "broken.csv" in rows["broken"][10]
        assert (rows["samples"][2], rows["samples"][3]) == ("new", "6")
        assert (rows["expression"][2], rows["expression"][3]) == ("new", "30")
        assert summary.locator("text=failed").first.is_visible()
        assert "2 new, 1 failed" in summary.locator("#headline").inner_text()
        page.screenshot(path=str(ARTIFACTS / "report-summary.png"))

        for label in ("rows and bytes per dataset", "lake growth"):
            show(label)
            image = page.locator("img[src^='data:image/png']").last
            image.wait_for(state="visible")
            width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
            box = image.bounding_box()
            assert width > 400 and box and box["width"] > 300 and box["height"] > 100, (label, width, box)
        page.screenshot(path=str(ARTIFACTS / "report.png"))
        browser.close()
    print(f"screenshots: {ARTIFACTS}/report-summary.png, report.png")

    (workdir / "broken.csv").write_text("gene,value\nTP53,1.5\nBRCA1,2.0\n")
    fixed = run_snakemake(workdir, config)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    state = json.loads(omicslake(workdir, "status", "--json").stdout)
    assert [d["dataset"] for d in state["datasets"] if d["state"] == "failed"] == []
    assert {d["dataset"]: d["rows"] for d in state["datasets"]}["http.broken"] == 2
    summary = (workdir / "results" / "report" / "summary.html").read_text()
    assert "1 new, 2 unchanged" in summary and "failed" not in summary.split("<tbody>")[1]


def test_status_names_staging_leftovers_and_a_missing_lake(workdir):
    config = workflow_config(workdir, sources(workdir))
    (workdir / "config.yaml").write_text(json.dumps(config))
    status = omicslake(workdir, "status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert "no lake catalog" in state["lake_error"]
    assert {d["state"] for d in state["datasets"]} == {"not loaded"}

    part = workdir / "staging" / "http" / "samples" / "download" / "big.csv.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1234)
    left = json.loads(omicslake(workdir, "status", "--json").stdout)["leftovers"]
    assert left == [{"dataset": "http.samples", "kind": "interrupted download", "files": 1, "bytes": 1234}]


def docs_sql(page: str, heading: str) -> list[str]:
    """The ```sql blocks of a section of a page in docs/."""
    text = (REPO / "docs" / page).read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def test_the_documented_provenance_queries_answer_on_a_real_lake(lake, tmp_path):
    samples = tmp_path / "samples.csv"
    shutil.copy(REPO / "demo" / "data" / "samples.csv", samples)
    lake.load("samples", {"url": samples.as_uri()})
    with samples.open("a") as f:
        f.write("S07,kidney,tumor,58,30.1\n")
    lake.load("samples", {"url": samples.as_uri()})  # a new version replaces the first load

    where_from, changed, version = docs_sql("queries.md", "## Provenance in SQL")
    (row,) = lake.query(where_from)
    sample, dataset, snapshot, _, url, checksum, _ = row
    assert (sample, dataset, url) == ("S01", "http.samples", samples.as_uri())
    assert checksum.startswith("sha256:") and snapshot == lake.snapshots() - 1  # the newest snapshot
    assert [(d, before, now, change) for d, _, _, before, now, change in lake.query(changed)] == [
        ("http.samples", None, 6, "new"),
        ("http.samples", 6, 7, "replaced"),
    ]
    newest = lake.snapshots() - 1
    with open_lake(lake.catalog, lake.data_path) as con:  # the first load a week earlier: another run
        con.execute("UPDATE lake.omicslake.loads SET registered_at = registered_at - INTERVAL 7 DAY WHERE rows = 6")
    assert [(d, change) for d, _, _, _, _, change in lake.query(changed)] == [("http.samples", "replaced")]
    ((table, dataset, snapshot, url, *_),) = lake.query(version)
    assert (table, dataset, snapshot, url) == ("http.samples", "http.samples", newest, samples.as_uri())


def run_job(folder: Path, step: str, body: str) -> subprocess.CompletedProcess:
    """A job through jobs.run in its own process, recording its outcome in `folder`; `body` is its work."""
    script = f"""
import os, signal
from pathlib import Path
from omicslake import jobs
from omicslake.errors import DatasetError

def work():
{textwrap.indent(body, "    ")}

jobs.run(None, work, outcome=(Path({str(folder)!r}), {step!r}))
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_a_job_killed_outright_or_by_slurm_stays_listed_until_a_later_step_succeeds(tmp_path):
    from omicslake.jobs import UNFINISHED
    from omicslake.status import dataset_status

    folder = tmp_path / "http" / "x"
    assert run_job(folder, "ingest_http", "os.kill(os.getpid(), signal.SIGKILL)").returncode == -9  # out of memory
    shown = dataset_status("http.x", None, folder)
    assert (shown.state, shown.failed_step, shown.cause) == ("unfinished", "ingest_http", UNFINISHED)

    assert run_job(folder, "ingest_http", "os.kill(os.getpid(), signal.SIGTERM)").returncode == 143  # time limit
    shown = dataset_status("http.x", None, folder)
    assert shown.state == "failed" and "killed by SIGTERM" in shown.cause

    assert run_job(folder, "ingest_http", "pass").returncode == 0
    conflict = "raise DatasetError('http.x', 'schema conflict', 'f.parquet', fix='rename')"
    assert run_job(folder, "register", conflict).returncode == 1
    shown = dataset_status("http.x", None, folder)
    assert (shown.state, shown.failed_step) == ("failed", "register")
    assert shown.cause == "f.parquet: schema conflict; fix: rename"
    assert run_job(folder, "register", "pass").returncode == 0
    assert dataset_status("http.x", None, folder).state == "not loaded"  # no failure left: the lake decides


def test_a_failed_chunk_stays_failed_when_a_later_chunk_succeeds_until_the_dataset_loads(tmp_path):
    from omicslake.jobs import forget_chunks
    from omicslake.status import dataset_status

    folder = tmp_path / "cellxgene" / "lung"
    failed = "raise DatasetError('cellxgene.lung', 'census unreachable')"
    assert run_job(folder, "ingest_cellxgene_chunk_1", failed).returncode == 1
    assert run_job(folder, "ingest_cellxgene_chunk_0", "pass").returncode == 0  # started later, succeeded
    shown = dataset_status("cellxgene.lung", None, folder)
    assert (shown.state, shown.failed_step) == ("failed", "ingest_cellxgene_chunk_1")

    for step in ("ingest_cellxgene_chunk_1", "ingest_cellxgene"):  # the rerun: the chunk, then the gather
        assert run_job(folder, step, "pass").returncode == 0
    assert dataset_status("cellxgene.lung", None, folder).state == "not loaded"
    forget_chunks(folder)  # a new plan: the last plan's chunk outcomes go
    assert sorted(p.name for p in (folder / "outcome").iterdir()) == ["ingest_cellxgene.json"]


def test_the_report_says_what_this_run_did_from_the_lake_not_from_the_probe(tmp_path):
    from omicslake.report import changes
    from omicslake.status import Dataset, Status

    since = "2026-11-28T10:00:00+00:00"
    before, during = "2026-11-21 10:00:00.5+00", "2026-11-28 10:05:00.5+00"
    datasets = [
        Dataset("http.a", "registered", loads=1, registered_at=during, last_job_at="2026-11-28T10:04:00+00:00"),
        Dataset("http.b", "registered", loads=3, registered_at=during, last_job_at="2026-11-28T10:04:00+00:00"),
        # touched upstream, same bytes: its jobs ran, no new load
        Dataset("http.c", "registered", loads=1, registered_at=before, last_job_at="2026-11-28T10:04:00+00:00"),
        # changed upstream, but the run stopped before its jobs
        Dataset("http.d", "registered", loads=1, registered_at=before, last_job_at="2026-11-21T10:00:00+00:00"),
        Dataset("http.e", "failed", loads=1, registered_at=before, cause="HTTP 503"),
        Dataset("http.f", "registered", loads=2, registered_at=before),
    ]
    probed = {"a": "new", "b": "changed", "c": "changed", "d": "changed", "e": "changed", "f": "unchanged"}
    report = tmp_path / "probe.json"
    report.write_text(json.dumps({"source": "http", "datasets": probed}))
    assert changes(Status("c", None, [], [], datasets, []), [str(report)], since) == {
        "http.a": "new",
        "http.b": "replaced",
        "http.c": "unchanged",
        "http.d": "not run",
        "http.e": "failed",
        "http.f": "unchanged",
    }


def test_status_does_not_wait_for_a_long_registration(lake):
    import fcntl
    import time

    from omicslake.status import collect

    samples = REPO / "demo" / "data" / "samples.csv"
    lake.load("samples", {"url": samples.as_uri()})
    config = {
        "lake": lake.lake,
        "staging": str(lake.staging),
        "sources": {"http": [{"name": "samples", "url": samples.as_uri()}]},
    }
    with open(f"{lake.catalog}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a registration holds
        started = time.monotonic()
        status = collect(config, wait_seconds=1)
        assert time.monotonic() - started < 5
    assert "is busy: a registration is running" in status.lake_error
    assert [(d.dataset, d.state) for d in status.datasets] == [("http.samples", "staged")]  # staging still read
    assert [t.table for t in collect(config).tables] == ["http.samples"]  # the lock is free again


def test_the_report_of_thousands_of_datasets_reads_per_source_with_failures_first(tmp_path):
    from PIL import Image

    from omicslake.report import plot_datasets, summary_page
    from omicslake.status import Dataset, Status

    datasets = [Dataset(f"http.t{i:04d}", "registered", loads=1, rows=100, bytes=2_000) for i in range(3000)]
    datasets += [Dataset(f"geo.GSE{i}", "registered", loads=2, rows=5_000, bytes=90_000) for i in range(40)]
    datasets += [Dataset("http.t9998", "failed", cause="HTTP 503 from the server", failed_step="ingest_http")]
    datasets += [Dataset("geo.GSE999", "failed", cause="truncated gzip", failed_step="ingest_geo", log="logs/x.log")]
    change = {d.dataset: "new" for d in datasets} | {"http.t9998": "failed", "geo.GSE999": "failed"}
    change |= {f"geo.GSE{i}": "replaced" for i in range(10, 20)}
    datasets += [Dataset("zenodo.record_1", "registered", loads=1, rows=7, bytes=100)]  # its probe failed
    page = summary_page(Status("c", None, [], [], datasets, []), change)

    sources = page.split('<table id="sources">')[1].split("</table>")[0]
    cells = lambda row: re.findall(r"<td[^>]*>(.*?)</td>", row)  # noqa: E731
    per_source = {cells(r)[0]: cells(r) for r in sources.split("<tr>")[2:]}
    assert per_source["http"][1:4] == ["3,001", "3,000", "0"]  # datasets, new, replaced
    assert per_source["http"][5] == "1" and per_source["geo"][5] == "1"  # failed
    assert per_source["geo"][1:4] == ["41", "30", "10"]
    assert per_source["geo"][8] == f"{40 * 5_000:,}"  # rows
    assert per_source["zenodo"][1] == "1" and per_source["zenodo"][7] == "1"  # datasets, not probed
    failures = page.split('<table id="failures">')[1].split("</table>")[0]
    assert "truncated gzip" in failures and "HTTP 503" in failures and "logs/x.log" in failures
    assert page.index('id="sources"') < page.index('id="failures"') < page.index('id="datasets"')
    first_rows = page.split('<table id="datasets">')[1].split("<tbody>")[1].split("</tr>")[:2]
    assert all(">failed<" in row for row in first_rows)  # failures first in the full table too

    plot = tmp_path / "datasets.png"
    plot_datasets(datasets, change, str(plot))
    width, height = Image.open(plot).size
    assert width <= 1400 and height <= 600, (width, height)  # two bars, not 3,042


def test_status_counts_rows_from_the_catalog_as_count_star_does(lake, tmp_path):
    from omicslake.catalog import table_files
    from omicslake.status import collect

    def csv(name: str, rows: int, offset: int = 0) -> str:
        path = tmp_path / f"{name}.csv"
        path.write_text("id,value\n" + "".join(f"{i},{i + offset}.5\n" for i in range(rows)))
        return path.as_uri()

    for name, rows in {"a": 5_000, "b": 300, "c": 3_000, "d": 100, "e": 3}.items():
        lake.load(name, {"url": csv(name, rows)})
    lake.load("a", {"url": csv("a", 6_000, offset=1)})  # a reload: the old load's file retired whole
    lake.load("e", {"url": csv("e", 4, offset=1)})  # a reload of a small load: DuckLake inlines the deletes
    with open_lake(lake.catalog, lake.data_path) as con:  # what an analyst may do by hand
        con.execute("DELETE FROM lake.http.b WHERE id < 10")  # small: DuckLake inlines the deletes
        con.execute("DELETE FROM lake.http.c WHERE id % 2 = 0")  # a delete file
        con.execute("INSERT INTO lake.http.d SELECT range, 0.5 FROM range(5)")  # inlined rows
        con.execute("CREATE TABLE lake.http.f AS SELECT range AS id FROM range(4)")  # only inlined rows,
        con.execute("DELETE FROM lake.http.f WHERE id = 2")  # one of them deleted (its end_snapshot)
        names = [f"{s}.{t}" for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'http'"
        ).fetchall()]  # fmt: skip
        exact = {name: con.execute(f"SELECT count(*) FROM lake.{name}").fetchone()[0] for name in names}
        from_catalog = {f"{s}.{t}": rows for s, t, _, _, rows in table_files(con)}
        assert exact == {"http.a": 6_000, "http.b": 290, "http.c": 1_500, "http.d": 105, "http.e": 4, "http.f": 3}
        assert from_catalog == exact  # files, delete files, inlined deletes (b, e) and inlined rows (d, f)
        con.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")  # their change records go
        assert {f"{s}.{t}": rows for s, t, _, _, rows in table_files(con)} == exact
    config = {"lake": lake.lake, "staging": str(lake.staging), "sources": {"http": []}}
    assert {t.table: t.rows for t in collect(config).tables} == exact
