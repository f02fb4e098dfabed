"""A PostgreSQL catalog (real PostgreSQL on 127.0.0.1): loads, readers during a registration, two
registrations at once, and clear errors."""

import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from omicslake import provenance
from omicslake.catalog import open_lake, table_files
from omicslake.config import check
from omicslake.errors import ConfigError, OmicslakeError
from omicslake.status import collect
from standins.servers import PostgresServer
from tests.conftest import REPO, write_gz

pytestmark = pytest.mark.slow  # a PostgreSQL server: not in `make test-fast`

GENES = "gene_id\tsymbol\tscore\n1\tA1BG\t0.5\n2\tA2M\t1.0\n3\tNAT1\t1.25\n"


def genes_entry(tmp_path, name="genes", text=GENES) -> dict:
    path = write_gz(tmp_path / "src" / f"{name}.tsv.gz", text)
    return {"url": f"file://{path}"}


def test_a_postgres_catalog_loads_replaces_and_reruns(pg_lake, tmp_path):
    cfg = genes_entry(tmp_path)
    first = pg_lake.load("genes", cfg)
    assert pg_lake.query("SELECT count(*), sum(score) FROM lake.http.genes") == [(3, 2.75)]
    again = pg_lake.load("genes", cfg)
    assert again.status == "unchanged" and again.snapshot_id == first.snapshot_id
    write_gz(tmp_path / "src" / "genes.tsv.gz", GENES + "4\tNAT2\t2.0\n")
    os.utime(tmp_path / "src" / "genes.tsv.gz", (1, 1))
    second = pg_lake.load("genes", cfg)
    assert second.snapshot_id == first.snapshot_id + 1
    assert pg_lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]
    snapshots = pg_lake.query("SELECT snapshot_id FROM lake.snapshots() WHERE commit_message LIKE 'load %' ORDER BY 1")
    loads = pg_lake.query("SELECT snapshot_id FROM lake.omicslake.loads ORDER BY 1")
    assert loads == snapshots == [(first.snapshot_id,), (second.snapshot_id,)]  # read back, as DuckLake numbered them
    config = {"lake": pg_lake.lake, "staging": str(pg_lake.staging), "sources": {"http": []}}
    assert [(t.table, t.rows) for t in collect(config).tables] == [("http.genes", 4)]
    with open_lake(pg_lake.catalog, pg_lake.data_path) as con:
        con.execute("CREATE TABLE lake.http.notes AS SELECT range AS id FROM range(4)")  # rows inlined in PostgreSQL,
        con.execute("DELETE FROM lake.http.notes WHERE id = 2")  # one deleted: no inlined-delete table
        rows = [(s, t, rows) for s, t, _, _, rows in table_files(con)]
    assert rows == [("http", "genes", 4), ("http", "notes", 3)]  # the reload's deletes were inlined too


def test_readers_query_while_a_registration_runs(pg_lake, tmp_path, monkeypatch):
    pg_lake.load("genes", genes_entry(tmp_path))
    pg_lake.ingest("more", genes_entry(tmp_path, "more"))
    inside = threading.Event()
    release = threading.Event()
    write_provenance = provenance.write_provenance

    def slow_provenance(*args, **kwargs):  # hold the registration open inside its transaction
        row = write_provenance(*args, **kwargs)
        inside.set()
        release.wait(30)
        return row

    monkeypatch.setattr(provenance, "write_provenance", slow_provenance)
    done = {}
    writer = threading.Thread(target=lambda: done.update(receipt=pg_lake.register("more")))
    writer.start()
    try:
        assert inside.wait(30)
        started = time.monotonic()
        seen = pg_lake.query(
            "SELECT (SELECT count(*) FROM lake.http.genes), (SELECT count(*) FROM lake.omicslake.loads)"
        )
        assert time.monotonic() - started < 10  # not queued behind the writer
        assert seen == [(3, 1)]  # the committed state: the registration in progress is invisible
    finally:
        release.set()
        writer.join(60)
    assert done["receipt"].status == "registered"  # the registration itself ended well
    assert pg_lake.query("SELECT count(*) FROM lake.http.more") == [(3,)]


def test_two_registrations_at_once_both_land_once(pg_lake, tmp_path):
    config = {
        "lake": {"catalog": pg_lake.catalog, "data_path": pg_lake.data_path},
        "staging": str(pg_lake.staging),
        "logs": str(tmp_path / "logs"),
        "sources": {"http": [{"name": n, **genes_entry(tmp_path, n)} for n in ("genes", "more")]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    for name in ("genes", "more"):
        pg_lake.ingest(name, config["sources"]["http"][["genes", "more"].index(name)])
    command = [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml"), "register"]
    runs = [
        subprocess.Popen([*command, f"http.{n}"], cwd=REPO, stderr=subprocess.PIPE, text=True)
        for n in ("genes", "more")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    loads = pg_lake.query("SELECT dataset, snapshot_id FROM lake.omicslake.loads ORDER BY snapshot_id")
    assert sorted(d for d, _ in loads) == ["http.genes", "http.more"]
    assert len({s for _, s in loads}) == 2
    messages = pg_lake.query(
        "SELECT snapshot_id, commit_message FROM lake.snapshots() WHERE commit_message LIKE 'load %'"
    )
    assert sorted((s, m.split()[1]) for s, m in messages) == sorted((s, d) for d, s in loads)
    assert pg_lake.query("SELECT (SELECT count(*) FROM lake.http.genes), (SELECT count(*) FROM lake.http.more)") == [
        (3, 3)
    ]


def test_a_wrong_password_is_one_clear_error(pg_lake, tmp_path, monkeypatch):
    pg_lake.ingest("genes", genes_entry(tmp_path))
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(
        OmicslakeError, match=r"cannot open the lake catalog postgres:.*password authentication failed"
    ) as e:
        pg_lake.register("genes")
    assert "PGPASSWORD or ~/.pgpass" in str(e.value) and PostgresServer.PASSWORD not in str(e.value)
    assert str(e.value).startswith("http.genes: cannot open the lake catalog")  # the line names the dataset
    assert "; fix: set the password in PGPASSWORD or ~/.pgpass" in str(e.value)


@pytest.mark.parametrize("conninfo", ["dbname=x host=db password=hunter2", "postgresql://lake:hunter2@db/omicslake"])
def test_a_password_in_the_catalog_string_is_refused(conninfo):
    with pytest.raises(ConfigError, match="lake.catalog: a password in the catalog string") as error:
        check({"lake": {"catalog": f"postgres:{conninfo}"}, "sources": {}})
    assert "hunter2" not in str(error.value)


def test_attach_prints_everything_another_duckdb_needs(pg_lake, tmp_path):
    """No setup SQL to write: extensions, secrets and the ATTACH come from the config."""
    from omicslake.catalog import connect

    pg_lake.load("genes", genes_entry(tmp_path))
    config = {
        "lake": {"catalog": pg_lake.catalog, "data_path": pg_lake.data_path},
        "sources": {"s3": [{"name": "tpm", "bucket_url": "s3://lab/tpm/", "register_in_place": True,
                            "endpoint_url": "http://127.0.0.1:9"}]},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    shown = subprocess.run(
        [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml"), "attach"],
        capture_output=True, text=True, env={**os.environ, "AWS_SECRET_ACCESS_KEY": "never-printed"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    statements = [s for s in shown.stdout.strip().split(";\n") if s]
    loads = ["ducklake", "postgres", "httpfs", "aws"]
    assert statements[:8] == [f"{verb} {name}" for name in loads for verb in ("INSTALL", "LOAD")]
    assert "SCOPE 's3://lab/tpm/'" in statements[8] and "PROVIDER credential_chain" in statements[8]
    assert "never-printed" not in shown.stdout and PostgresServer.PASSWORD not in shown.stdout
    con = connect("postgres", "httpfs")  # the extensions a client would have installed
    for statement in statements[-2:]:  # the ATTACH, then USE lake
        con.execute(statement.rstrip(";"))
    assert con.execute("SELECT count(*) FROM http.genes").fetchall() == [(3,)]
