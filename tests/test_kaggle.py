"""Kaggle source through the real kagglesdk client, against a local server answering the RPC calls
it makes (tests/servers.KaggleServer)."""

import io
import zipfile

import pytest

from omicslake.download import DownloadSettings
from omicslake.errors import ConfigError, DatasetError
from omicslake.sources import kaggle
from standins.servers import SIGNATURE, KaggleServer
from tests.conftest import KAGGLE_KEY as KEY

EXPRESSION = b"gene,liver,lung\nTP53,1.5,2.0\nMYC,3.0,0.5\n"


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
    files = lake.query("SELECT record_id, record_version, key, size, checksum, url, loaded FROM lake.kaggle.files")
    url = "https://www.kaggle.com/datasets/owner/atlas/versions/3"
    assert sorted(files) == [
        ("owner/atlas", "3", "README.txt", 5, None, url, False),  # the archive's md5 is checked; members have none
        ("owner/atlas", "3", "data/Expression.csv", len(EXPRESSION), None, url, True),
    ]
    assert lake.query("SELECT version, file_key, gene, lung FROM lake.kaggle.expression ORDER BY gene") == [
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
    with pytest.raises(
        DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v1: member '\.\./\.\./escaped\.csv' leaves"
    ):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert not (lake.root / "lake").exists() and not list(tmp_path.rglob("escaped.csv"))


def test_an_archive_that_does_not_match_its_md5_is_refused(lake, kaggle_api):
    kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
    kaggle_api.bad_md5.add(("owner/atlas", 1))
    with pytest.raises(
        DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v1: checksum mismatch.*; fix: .*run again"
    ):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")


def test_missing_credentials_name_the_variables_to_set(lake, kaggle_api, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(
        DatasetError, match="no Kaggle credentials; fix: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY"
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
        DatasetError,
        match=r"^kaggle\.owner__atlas: Kaggle GetDataset owner/atlas failed: HTTP 404: Not found; fix: check the ref",
    ):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    kaggle_api.publish("owner/atlas", 1, {"broken.csv": b"a,b\n1,2\n3,4,5\n"})
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v1/broken\.csv: malformed csv"):
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")


def test_storage_faults_are_retried_and_a_refusal_never_shows_the_signed_url(lake, kaggle_api):
    kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
    kaggle_api.blob_faults = [503, "break"]  # the session retries the 503; the broken body is fetched again
    lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert [r["path"].partition("?")[0] for r in kaggle_api.requests if r["body"] is None] == [
        "/blobs/owner-atlas-1.zip"
    ] * 3
    assert lake.query("SELECT count(*) FROM lake.kaggle.expression") == [(2,)]
    kaggle_api.publish("owner/atlas", 2, {"expression.csv": EXPRESSION})
    kaggle_api.blob_faults = [403]
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v2: .*HTTP 403") as error:
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert "/blobs/owner-atlas-2.zip" in str(error.value) and SIGNATURE not in str(error.value)
    assert lake.query("SELECT DISTINCT version FROM lake.kaggle.expression") == [(1,)]  # v1 stays


def test_an_unreachable_storage_host_never_shows_the_signature(lake, kaggle_api):
    """urllib3 names the URL without its scheme (`Max retries exceeded with url: /path?query`)."""
    from standins.servers import free_ports

    kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
    kaggle_api.blob_host = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    with pytest.raises(DatasetError, match=r"^kaggle\.owner__atlas: owner/atlas v1: .*/blobs/owner-atlas-1\.zip") as e:
        lake.load("owner__atlas", entry(kaggle_api), "kaggle")
    assert SIGNATURE not in str(e.value) and "X-Goog-Signature" not in str(e.value)


@pytest.mark.parametrize("where", ["KAGGLE_API_TOKEN as a file", "~/.kaggle/access_token"])
def test_a_token_file_is_found_where_kagglesdk_looks(lake, kaggle_api, monkeypatch, tmp_path, where):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    token = tmp_path / "home" / ".kaggle" / "access_token"
    token.parent.mkdir(parents=True)
    token.write_text("KGAT_from_file\n")
    if where == "KAGGLE_API_TOKEN as a file":
        token = token.rename(tmp_path / "token")
        monkeypatch.setenv("KAGGLE_API_TOKEN", str(token))
    server = KaggleServer(token="KGAT_from_file")
    try:
        server.publish("owner/atlas", 1, {"expression.csv": EXPRESSION})
        lake.load("owner__atlas", entry(server), "kaggle")
    finally:
        server.stop()
    assert lake.query("SELECT count(*) FROM lake.kaggle.expression") == [(2,)]


def test_each_client_calls_its_own_endpoint(kaggle_api):
    """kagglesdk picks endpoints process-wide; two configured endpoints must not cross."""
    other = KaggleServer(login=("alice", KEY))
    try:
        kaggle_api.publish("owner/atlas", 1, {"expression.csv": EXPRESSION}, title="first")
        other.publish("owner/atlas", 1, {"expression.csv": EXPRESSION}, title="second")
        settings = DownloadSettings(retries=0, backoff_seconds=0.05, timeout_seconds=10)
        first, second = entry(kaggle_api), entry(other)
        assert kaggle.describe("x", second, settings)["title"] == "second"
        assert kaggle.describe("x", first, settings)["title"] == "first"
    finally:
        other.stop()


def test_file_globs_junk_and_txt_files(lake, kaggle_api):
    kaggle_api.publish(
        "owner/atlas",
        1,
        {
            "data/expression.csv": EXPRESSION,
            "__MACOSX/data/._expression.csv": b"\x00\x05\x16\x07 AppleDouble",
            "data/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "notes.txt": b"Measured in 2024.\n",
            "samples.txt": b"sample\ttissue\nA\tlung\n",
            "other.csv": b"a\n1\n",
        },
    )
    chosen = entry(kaggle_api, files=["expression.csv", "*.txt"], tables={"samples.txt": "samples"})
    lake.load("owner__atlas", chosen, "kaggle")
    assert lake.query("SELECT key, loaded FROM lake.kaggle.files ORDER BY key") == [
        ("__MACOSX/data/._expression.csv", False),
        ("data/.DS_Store", False),
        ("data/expression.csv", True),  # a glob matches the base name too
        ("notes.txt", False),  # a .txt is a table only when `tables` names it
        ("other.csv", False),  # not selected
        ("samples.txt", True),
    ]
    assert lake.query("SELECT file_key, sample, tissue FROM lake.kaggle.samples") == [("samples.txt", "A", "lung")]
    tables = lake.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'kaggle' ORDER BY 1")
    assert tables == [("datasets",), ("expression",), ("files",), ("samples",)]


def test_config_names_and_endpoints():
    names = kaggle.datasets({"datasets": [{"ref": "Owner-1/RNA.seq"}, {"ref": "1000genomes/phase-3"}]})
    assert list(names) == ["owner_1__rna_seq", "k_1000genomes__phase_3"]
    with pytest.raises(ConfigError, match="api_endpoint: http://kaggle.example.org would send your Kaggle credentials"):
        kaggle.datasets({"api_endpoint": "http://kaggle.example.org", "datasets": []})
    with pytest.raises(ConfigError, match="api_endpoint: a user or password in the URL"):
        kaggle.datasets({"api_endpoint": "https://me:pw@kaggle.example.org", "datasets": []})
    kaggle.datasets({"api_endpoint": "http://localhost:7777", "datasets": []})  # this machine: fine
