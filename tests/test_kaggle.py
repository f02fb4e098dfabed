"""Kaggle source through the real kagglesdk client, against a local server answering the RPC calls
it makes (tests/servers.KaggleServer)."""

import io
import zipfile

import pytest

from omicslake.errors import DatasetError
from omicslake.sources import kaggle
from tests.servers import KaggleServer

KEY = "kaggle-key-s3cr3t-0042"
EXPRESSION = b"gene,liver,lung\nTP53,1.5,2.0\nMYC,3.0,0.5\n"


@pytest.fixture
def kaggle_api(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-json"))
    server = KaggleServer(login=("alice", KEY))
    yield server
    server.stop()


def entry(server: KaggleServer, **extra) -> dict:
    return kaggle.datasets({"api_endpoint": server.endpoint, "datasets": [{"ref": "owner/atlas", **extra}]})[
        "owner__atlas"
    ]


def test_a_dataset_version_loads_its_metadata_files_and_tables(lake, kaggle_api):
    kaggle_api.publish("owner/atlas", 3, {"data/Expression.csv": EXPRESSION, "README.txt": b"notes"})
    first = lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert lake.query("SELECT ref, version, title, license FROM lake.kaggle.datasets") == [
        ("owner/atlas", 3, "Expression atlas", "CC0-1.0")
    ]
    assert lake.query("SELECT name, loaded FROM lake.kaggle.files ORDER BY name") == [
        ("README.txt", False),
        ("data/Expression.csv", True),
    ]
    assert lake.query("SELECT version, file_name, gene, lung FROM lake.kaggle.expression ORDER BY gene") == [
        (3, "data/Expression.csv", "MYC", 0.5),
        (3, "data/Expression.csv", "TP53", 2.0),
    ]
    again = lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert again.status == "unchanged" and again.snapshot_id == first.snapshot_id
    downloads = [r for r in kaggle_api.requests if r["path"].endswith("/DownloadDataset")]
    assert len(downloads) == 1 and downloads[0]["body"]["datasetVersionNumber"] == 3
    leaked = [p for p in lake.root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []


def test_a_new_version_replaces_rows_and_a_pin_holds(lake, kaggle_api):
    kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
    first = lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    kaggle_api.publish("owner/atlas", 2, {"expression.csv": b"gene,liver,lung\nTP53,9.0,9.5\n"})
    second = lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert second.snapshot_id == first.snapshot_id + 1
    assert lake.query("SELECT version, gene, liver FROM lake.kaggle.expression") == [(2, "TP53", 9.0)]
    pinned = lake.load("owner__atlas", entry(kaggle_api, version=1), "kaggle")
    assert pinned.status == "registered"
    assert lake.query("SELECT DISTINCT version FROM lake.kaggle.expression") == [(1,)]


def test_a_zip_slip_archive_is_refused_and_nothing_registered(lake, kaggle_api, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.csv", "a\n1\n")
    kaggle_api.publish("owner/atlas", 1, {})
    kaggle_api.datasets["owner/atlas"]["versions"][1] = archive.getvalue()
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: archive: member '\.\./\.\./escaped\.csv' leaves"):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert not (lake.root / "lake").exists() and not list(tmp_path.rglob("escaped.csv"))


def test_an_archive_that_does_not_match_its_md5_is_refused(lake, kaggle_api):
    kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
    kaggle_api.bad_md5.add(("owner/atlas", 1))
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v1: checksum mismatch"):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")


def test_missing_credentials_name_the_variables_to_set(lake, kaggle_api, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(
        DatasetError, match="no Kaggle credentials: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY"
    ):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert kaggle_api.requests == []  # nothing asked anonymously


def test_an_api_token_is_sent_as_bearer(lake, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_" + KEY)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    server = KaggleServer(token="KGAT_" + KEY)
    try:
        server.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
        lake.load("owner__atlas", entry(server), "kaggle")
        assert {r["headers"].get("Authorization") for r in server.requests if r["body"] is not None} == {
            "Bearer KGAT_" + KEY
        }
    finally:
        server.stop()
    assert lake.query("SELECT count(*) FROM lake.kaggle.expression") == [(2,)]


def test_an_unknown_dataset_and_a_malformed_table_are_one_clear_error(lake, kaggle_api):
    with pytest.raises(
        DatasetError, match=r"^kaggle\.owner__atlas: Kaggle GetDataset owner/atlas failed: HTTP 404: Not found"
    ):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    kaggle_api.publish("owner/atlas", 1, {"broken.csv": b"a,b\n1,2\n3,4,5\n"})
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: broken\.csv: malformed csv"):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")


@pytest.mark.slow
def test_workflow_loads_a_dataset_and_a_rerun_starts_no_job(tmp_path, kaggle_api):
    from tests.conftest import Lake, probe_report, run_snakemake, started_jobs, workflow_config

    kaggle_api.publish("owner/atlas", 4, {"expression.csv": EXPRESSION})
    sources = {"kaggle": {"api_endpoint": kaggle_api.endpoint, "datasets": [{"ref": "owner/atlas"}]}}
    config = workflow_config(tmp_path, sources)
    first = run_snakemake(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert started_jobs(first) == [("ingest_kaggle", "owner__atlas"), ("register", "owner__atlas")]
    assert Lake(tmp_path).query("SELECT count(*) FROM lake.kaggle.expression") == [(2,)]
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0 and started_jobs(again) == []
    assert probe_report(tmp_path, "kaggle") == {"owner__atlas": "unchanged"}
    logs = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert logs == []  # not in logs, stamps, manifests, receipts, the catalog or the data
