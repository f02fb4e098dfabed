"""Zenodo source against a local HTTP server in the shape of Zenodo's InvenioRDM records API:
`/api/records/{id}` (id, conceptrecid, doi, metadata, files[] with key, size, checksum
"md5:<hex>", links.self / links.content), `/api/records/{concept}/versions/latest`, and file
bodies at `/api/records/{id}/files/{key}/content`."""

import gzip
import hashlib

import pytest

from omicslake.errors import DatasetError
from omicslake.sources import zenodo
from standins.servers import Zenodo

COUNTS = gzip.compress(b"gene,sample_a,sample_b\nTP53,5,7\nBRCA1,0,3\nMYC,12,9\n")
SAMPLES = b"sample\ttissue\nsample_a\tlung\nsample_b\tliver\n"
PAPER = b"%PDF-1.7\n% not a table\n"


@pytest.fixture
def zenodo_api(http_server) -> Zenodo:
    return Zenodo(http_server)


def entries(api: str, *records: dict) -> dict:
    return zenodo.datasets({"api_url": api, "records": list(records)})


def test_a_record_loads_its_metadata_files_and_tables(lake, zenodo_api):
    zenodo_api.publish(7890123, {"counts_matrix.csv.gz": COUNTS, "Sample-Sheet.tsv": SAMPLES, "paper.pdf": PAPER})
    entry = entries(zenodo_api.api, {"id": 7890123, "tables": {"counts*": "counts"}})["record_7890123"]
    receipt = lake.load("record_7890123", entry, "zenodo")
    assert lake.query("SELECT record_id, concept_id, doi, version, license FROM lake.zenodo.records") == [
        ("7890123", "7890122", "10.5281/zenodo.7890123", "v1", "cc-by-4.0")
    ]
    files = lake.query(
        "SELECT record_id, record_version, key, size, checksum, url, loaded FROM lake.zenodo.files ORDER BY key"
    )
    content = f"{zenodo_api.api}/records/7890123/files/{{}}/content"
    md5 = {key: "md5:" + hashlib.md5(body).hexdigest() for key, body in [("counts_matrix.csv.gz", COUNTS),
           ("Sample-Sheet.tsv", SAMPLES), ("paper.pdf", PAPER)]}  # fmt: skip
    assert files == [
        ("7890123", "v1", key, len(body), md5[key], content.format(key), loaded)
        for key, body, loaded in [
            ("Sample-Sheet.tsv", SAMPLES, True),
            ("counts_matrix.csv.gz", COUNTS, True),
            ("paper.pdf", PAPER, False),
        ]
    ]
    assert lake.query("SELECT record_id, file_key, gene, sample_b FROM lake.zenodo.counts ORDER BY gene") == [
        ("7890123", "counts_matrix.csv.gz", "BRCA1", 3),
        ("7890123", "counts_matrix.csv.gz", "MYC", 9),
        ("7890123", "counts_matrix.csv.gz", "TP53", 7),
    ]
    assert lake.query("SELECT sample, tissue FROM lake.zenodo.sample_sheet ORDER BY 1") == [
        ("sample_a", "lung"),
        ("sample_b", "liver"),
    ]
    again = lake.load("record_7890123", entry, "zenodo")
    assert again.status == "unchanged" and again.snapshot_id == receipt.snapshot_id


def test_a_concept_follows_its_latest_version_and_a_new_version_replaces_rows(lake, zenodo_api):
    zenodo_api.publish(201, {"counts.csv.gz": COUNTS}, concept=200)
    entry = entries(zenodo_api.api, {"concept": 200})["concept_200"]
    first = lake.load("concept_200", entry, "zenodo")
    assert lake.query("SELECT DISTINCT record_id FROM lake.zenodo.counts") == [("201",)]
    newer = gzip.compress(b"gene,sample_a,sample_b\nTP53,6,8\n")
    zenodo_api.publish(202, {"counts.csv.gz": newer}, concept=200, version="v2")
    second = lake.load("concept_200", entry, "zenodo")
    assert second.snapshot_id == first.snapshot_id + 1  # one snapshot: old rows out, new rows in
    assert lake.query("SELECT record_id, gene, sample_a FROM lake.zenodo.counts") == [("202", "TP53", 6)]
    assert lake.query("SELECT record_id, version FROM lake.zenodo.records") == [("202", "v2")]
    old = lake.query(f"SELECT count(*) FROM lake.zenodo.counts AT (VERSION => {first.snapshot_id})")
    assert old == [(3,)]


def test_a_checksum_mismatch_fails_the_record_and_registers_nothing(lake, zenodo_api):
    zenodo_api.publish(301, {"counts.csv.gz": COUNTS}, checksums={"counts.csv.gz": "md5:" + "0" * 32})
    with pytest.raises(
        DatasetError, match=r"^zenodo\.record_301: .*counts\.csv\.gz/content: .*md5.*; fix: .*run again"
    ):
        lake.load("record_301", entries(zenodo_api.api, {"id": 301})["record_301"], "zenodo")
    assert not (lake.root / "lake").exists()


def test_an_unknown_record_is_one_clear_error(lake, zenodo_api):
    with pytest.raises(
        DatasetError, match=r"^zenodo\.record_999: .*: Zenodo has no record 999 \(HTTP 404\); fix: check the id"
    ):
        lake.load("record_999", entries(zenodo_api.api, {"id": 999})["record_999"], "zenodo")


def test_rate_limited_requests_are_retried_after_the_servers_delay(lake, zenodo_api, http_server):
    zenodo_api.publish(401, {"counts.csv.gz": COUNTS}, fail=[429], retry_after="1")
    lake.load("record_401", entries(zenodo_api.api, {"id": 401})["record_401"], "zenodo")
    hits = http_server.hits("/api/records/401")
    assert [h["status"] for h in hits[:2]] == [429, 200] and hits[1]["time"] - hits[0]["time"] >= 0.9
    assert lake.query("SELECT count(*) FROM lake.zenodo.counts") == [(3,)]


def test_a_malformed_table_names_its_file(lake, zenodo_api):
    zenodo_api.publish(501, {"broken.csv": b"a,b\n1,2\n3,4,5\n"})
    with pytest.raises(DatasetError, match=r"^zenodo\.record_501: broken\.csv: malformed csv: .*Expected 2 columns"):
        lake.load("record_501", entries(zenodo_api.api, {"id": 501})["record_501"], "zenodo")


def test_without_retry_after_a_429_waits_for_x_ratelimit_reset(lake, zenodo_api, http_server):
    """Zenodo documents X-RateLimit-Reset, not Retry-After: wait until then, not the short backoff."""
    zenodo_api.publish(402, {"counts.csv.gz": COUNTS}, fail=[429], rate_limit_reset=2)
    lake.load("record_402", entries(zenodo_api.api, {"id": 402})["record_402"], "zenodo")  # backoff 0.05 s
    hits = http_server.hits("/api/records/402")
    assert [h["status"] for h in hits[:2]] == [429, 200] and hits[1]["time"] - hits[0]["time"] >= 0.9


def test_a_zipped_table_loads_and_a_hostile_zip_is_refused(lake, zenodo_api):
    import io
    import zipfile

    def zipped(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for name, body in members.items():
                zf.writestr(name, body)
        return out.getvalue()

    zenodo_api.publish(701, {"tables.zip": zipped({"counts.csv": b"gene,n\nTP53,4\n", "figure.png": b"\x89PNG"})})
    lake.load("record_701", entries(zenodo_api.api, {"id": 701})["record_701"], "zenodo")
    assert lake.query("SELECT file_key, gene, n FROM lake.zenodo.counts") == [("tables.zip/counts.csv", "TP53", 4)]
    assert lake.query("SELECT key, loaded FROM lake.zenodo.files") == [("tables.zip", True)]
    zenodo_api.publish(702, {"evil.zip": zipped({"../escape.csv": b"a\n1\n"})})
    with pytest.raises(DatasetError, match=r"^zenodo\.record_702: evil\.zip: member '\.\./escape\.csv' leaves"):
        lake.load("record_702", entries(zenodo_api.api, {"id": 702})["record_702"], "zenodo")


def test_a_bare_hex_md5_as_the_legacy_api_writes_it_is_checked_too(lake, zenodo_api):
    zenodo_api.publish(801, {"counts.csv.gz": COUNTS}, checksums={"counts.csv.gz": hashlib.md5(COUNTS).hexdigest()})
    lake.load("record_801", entries(zenodo_api.api, {"id": 801})["record_801"], "zenodo")
    zenodo_api.publish(802, {"counts.csv.gz": COUNTS}, checksums={"counts.csv.gz": "0" * 32})
    with pytest.raises(DatasetError, match="md5"):
        lake.load("record_802", entries(zenodo_api.api, {"id": 802})["record_802"], "zenodo")


def test_a_record_of_the_legacy_api_is_versioned_by_its_updated_date(lake, zenodo_api):
    """zenodo.org's records API before InvenioRDM wrote `updated`, not `modified` (as recorded in 2022)."""
    zenodo_api.publish(7248153, {"counts.csv.gz": COUNTS}, updated="2022-10-25T08:51:20.783524+00:00")
    entry = entries(zenodo_api.api, {"id": 7248153})["record_7248153"]
    first = lake.load("record_7248153", entry, "zenodo")
    assert lake.query("SELECT modified FROM lake.zenodo.records") == [("2022-10-25T08:51:20.783524+00:00",)]
    zenodo_api.publish(7248153, {"counts.csv.gz": COUNTS}, updated="2022-11-02T09:00:00.000000+00:00")  # edited
    again = lake.load("record_7248153", entry, "zenodo")
    assert again.snapshot_id > first.snapshot_id
    assert lake.query("SELECT modified FROM lake.zenodo.records") == [("2022-11-02T09:00:00.000000+00:00",)]


def test_txt_files_load_only_when_named_and_macos_metadata_never(lake, zenodo_api):
    import io
    import zipfile

    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("tables/Counts_2.csv", "gene,n\nTP53,4\n")
        zf.writestr("__MACOSX/tables/._Counts_2.csv", b"\x00\x05\x16\x07 AppleDouble")
    notes_only = io.BytesIO()
    with zipfile.ZipFile(notes_only, "w") as zf:
        zf.writestr("__MACOSX/._x.csv", b"\x00\x05\x16\x07")
        zf.writestr("figure.png", b"\x89PNG")
    files = {
        "bundle.zip": bundle.getvalue(),
        "figures.zip": notes_only.getvalue(),
        "README.txt": b"Counts from STAR, see the paper.\n",
        "samples.txt": SAMPLES,
    }
    zenodo_api.publish(901, files)
    tables = {"Counts*": "counts", "samples.txt": "samples"}  # globs match a member's base name too
    lake.load("record_901", entries(zenodo_api.api, {"id": 901, "tables": tables})["record_901"], "zenodo")
    assert lake.query("SELECT key, loaded FROM lake.zenodo.files ORDER BY key") == [
        ("README.txt", False),
        ("bundle.zip", True),
        ("figures.zip", False),  # nothing tabular inside
        ("samples.txt", True),
    ]
    assert lake.query("SELECT file_key, gene, n FROM lake.zenodo.counts") == [
        ("bundle.zip/tables/Counts_2.csv", "TP53", 4)
    ]
    assert lake.query("SELECT file_key, sample FROM lake.zenodo.samples ORDER BY 2") == [
        ("samples.txt", "sample_a"),
        ("samples.txt", "sample_b"),
    ]
    tables = lake.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'zenodo' ORDER BY 1")
    assert tables == [("counts",), ("files",), ("records",), ("samples",)]


def test_a_corrupt_zip_names_the_record_file(lake, zenodo_api):
    zenodo_api.publish(902, {"tables.zip": b"PK\x03\x04" + b"\x00" * 40})
    with pytest.raises(DatasetError, match=r"^zenodo\.record_902: tables\.zip: a corrupt or truncated zip archive"):
        lake.load("record_902", entries(zenodo_api.api, {"id": 902})["record_902"], "zenodo")
    assert not (lake.root / "lake").exists()
