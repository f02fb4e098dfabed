"""S3 source against a real S3 server on 127.0.0.1 (SeaweedFS, with signature checks): CSV objects
staged incrementally, Parquet objects registered in place, and DuckLake maintenance that must not
touch objects that are not ours."""

import io
import os
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omicslake.errors import DatasetError
from omicslake.manifest import Manifest
from omicslake.sources import s3

pytestmark = pytest.mark.slow  # a SeaweedFS server per case: not in `make test-fast`

GENES = b"gene,sample_a,sample_b\nTP53,5,7\nBRCA1,0,3\n"
MORE = b"gene,sample_a,sample_b\nMYC,12,9\n"


def parquet(rows: dict) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(rows), out)
    return out.getvalue()


def entry(server, **extra) -> dict:
    fields = {"name": "counts", "bucket_url": "s3://public/rnaseq/", "endpoint_url": server.endpoint, **extra}
    return s3.datasets([fields])["counts"]


def manifest(lake) -> Manifest:
    return Manifest.read(lake.folder("counts", "s3") / "manifest.json")


def test_csv_objects_load_and_a_rerun_stages_only_new_or_changed_ones(lake, s3_server, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)  # a public bucket: no credentials at all
    s3_server.put("public", "rnaseq/batch1/genes.csv", GENES)
    s3_server.put("public", "rnaseq/batch2/genes.csv", MORE)
    s3_server.put("public", "rnaseq/README.md", b"not a table")
    cfg = entry(s3_server, anonymous=True, file_glob="**/*.csv")
    first = lake.load("counts", cfg, "s3")
    assert lake.query("SELECT gene, sample_b FROM lake.s3.counts ORDER BY gene") == [
        ("BRCA1", 3),
        ("MYC", 9),
        ("TP53", 7),
    ]
    again = lake.load("counts", cfg, "s3")
    assert again.status == "unchanged" and again.snapshot_id == first.snapshot_id

    s3_server.put("public", "rnaseq/batch2/genes.csv", b"gene,sample_a,sample_b\nMYC,13,10\n")  # changed
    s3_server.put("public", "rnaseq/batch3/genes.csv", b"gene,sample_a,sample_b\nEGFR,1,1\n")  # new
    second = lake.load("counts", cfg, "s3")
    staged = manifest(lake)
    assert sorted(f.upstream for f in staged.files) == [
        "s3://public/rnaseq/batch2/genes.csv",
        "s3://public/rnaseq/batch3/genes.csv",
    ]
    assert staged.kept == ["s3://public/rnaseq/batch1/genes.csv"]  # not downloaded again
    assert second.snapshot_id == first.snapshot_id + 1
    assert lake.query("SELECT gene, sample_b FROM lake.s3.counts ORDER BY gene") == [
        ("BRCA1", 3),
        ("EGFR", 1),
        ("MYC", 10),
        ("TP53", 7),
    ]
    files = lake.query("SELECT upstream, rows FROM lake.omicslake.files WHERE load_id = ? ORDER BY 1", [second.load_id])
    assert files == [
        ("s3://public/rnaseq/batch1/genes.csv", 2),
        ("s3://public/rnaseq/batch2/genes.csv", 1),
        ("s3://public/rnaseq/batch3/genes.csv", 1),
    ]

    s3_server.client().delete_object(Bucket="public", Key="rnaseq/batch1/genes.csv")  # removed upstream
    lake.load("counts", cfg, "s3")
    assert lake.query("SELECT gene FROM lake.s3.counts ORDER BY gene") == [("EGFR",), ("MYC",)]
    assert manifest(lake).files == []  # nothing new to stage: the load only retires batch1


def checkpoint_with_expiry(lake) -> None:
    """DuckLake maintenance with the settings under which CHECKPOINT merges registered files and
    deletes the originals (measured on 1.5.5), unless a table has auto_compact off."""
    from omicslake.catalog import open_lake

    with open_lake(lake.catalog, lake.data_path, s3=lake.s3) as con:
        con.execute("CALL lake.set_option('expire_older_than', '1 millisecond')")
        con.execute("CALL lake.set_option('delete_older_than', '1 millisecond')")
        for _ in range(2):
            time.sleep(0.05)
            con.execute("CHECKPOINT lake")


def test_staged_files_survive_checkpoint_with_expiry_settings(lake, s3_server, monkeypatch):
    for i in range(3):
        s3_server.put("public", f"rnaseq/batch{i}/genes.csv", b"gene,n\n" + f"G{i},{i}\n".encode())
    lake.load("counts", entry(s3_server, anonymous=True), "s3")  # three files in one table, in DATA_PATH
    files = lake.query("SELECT path, bytes FROM lake.omicslake.files")
    before = lake.query("SELECT gene, n FROM lake.s3.counts ORDER BY gene")
    checkpoint_with_expiry(lake)
    assert len(files) == 3
    for path, size in files:
        assert (lake.root / "lake" / "data" / path).stat().st_size == size
    assert lake.query("SELECT gene, n FROM lake.s3.counts ORDER BY gene") == before


def test_parquet_objects_are_registered_in_place_and_survive_checkpoint(lake, s3_server, aws_env):
    keys = [f"rnaseq/part-{i}.parquet" for i in range(3)]
    for i, key in enumerate(keys):
        s3_server.put("private", key, parquet({"gene": [f"G{i}a", f"G{i}b"], "tpm": [float(i), i + 0.5]}))
    cfg = entry(s3_server, bucket_url="s3://private/rnaseq/", register_in_place=True)
    lake.s3 = [s3.location(cfg)]
    first = lake.load("counts", cfg, "s3")
    assert not (lake.folder("counts", "s3") / "download").exists()  # zero bytes downloaded
    assert lake.query("SELECT count(*), sum(tpm) FROM lake.s3.counts") == [(6, 0 + 0.5 + 1 + 1.5 + 2 + 2.5)]
    registered = lake.query("SELECT path FROM lake.omicslake.files WHERE load_id = ? ORDER BY 1", [first.load_id])
    assert registered == [(f"s3://private/{key}",) for key in keys]
    assert not list((lake.root / "lake" / "data").rglob("*.parquet"))  # nothing copied into the lake

    checkpoint_with_expiry(lake)
    assert all(s3_server.exists("private", key) for key in keys)
    assert lake.query("SELECT count(*), sum(tpm) FROM lake.s3.counts") == [(6, 7.5)]

    s3_server.put("private", "rnaseq/part-3.parquet", parquet({"gene": ["G3"], "tpm": [9.0]}))  # new data, new key
    second = lake.load("counts", cfg, "s3")
    assert [f.path for f in manifest(lake).files] == ["s3://private/rnaseq/part-3.parquet"]  # only the new one
    assert lake.query("SELECT count(*), sum(tpm) FROM lake.s3.counts") == [(7, 16.5)]
    assert second.snapshot_id > first.snapshot_id


def test_in_place_registration_adds_exactly_the_listed_objects_when_more_arrive_meanwhile(lake, s3_server, aws_env):
    """Registration hands DuckLake one glob for objects that share a folder and a name prefix
    (one listing, not a request per object), and only when it matches exactly those objects."""
    for i in range(3):
        s3_server.put("private", f"rnaseq/part-{i:05d}.parquet", parquet({"gene": [f"G{i}"], "tpm": [float(i)]}))
    cfg = entry(s3_server, bucket_url="s3://private/rnaseq/", register_in_place=True)
    lake.s3 = [s3.location(cfg)]
    lake.ingest("counts", cfg, "s3")
    s3_server.put("private", "rnaseq/part-00003.parquet", parquet({"gene": ["late"], "tpm": [9.0]}))  # a glob's match
    lake.register("counts", "s3")
    assert lake.query("SELECT gene FROM lake.s3.counts ORDER BY 1") == [("G0",), ("G1",), ("G2",)]
    files = lake.query("SELECT data_file FROM ducklake_list_files('lake', 'counts', schema => 's3') ORDER BY 1")
    assert files == [(f"s3://private/rnaseq/part-{i:05d}.parquet",) for i in range(3)]

    lake.load("counts", cfg, "s3")  # the next run lists it: added alone
    assert lake.query("SELECT count(*), sum(tpm) FROM lake.s3.counts") == [(4, 12.0)]


def test_an_in_place_object_replaced_or_deleted_upstream_is_refused(lake, s3_server, aws_env):
    """DuckLake would read the new bytes with the old file's row positions: silently wrong rows."""
    s3_server.put("private", "rnaseq/a.parquet", parquet({"gene": ["A", "B"]}))
    s3_server.put("private", "rnaseq/b.parquet", parquet({"gene": ["C"]}))
    cfg = entry(s3_server, bucket_url="s3://private/rnaseq/", register_in_place=True)
    lake.s3 = [s3.location(cfg)]
    first = lake.load("counts", cfg, "s3")
    s3_server.put("private", "rnaseq/a.parquet", parquet({"gene": ["X", "Y", "Z"]}))
    with pytest.raises(
        DatasetError, match=r"^s3\.counts: s3://private/rnaseq/a\.parquet: an object registered in place"
    ):
        lake.load("counts", cfg, "s3")
    s3_server.put("private", "rnaseq/a.parquet", parquet({"gene": ["A", "B"]}))  # restored (a new ETag all the same)
    s3_server.client().delete_object(Bucket="private", Key="rnaseq/b.parquet")
    with pytest.raises(DatasetError, match=r"rnaseq/a\.parquet: an object registered in place was replaced or deleted"):
        lake.load("counts", cfg, "s3")
    assert lake.query("SELECT max(snapshot_id) FROM lake.snapshots()") == [(first.snapshot_id,)]  # nothing registered


def test_in_place_objects_already_registered_are_kept_after_a_lost_receipt(lake, s3_server, aws_env):
    s3_server.put("private", "rnaseq/a.parquet", parquet({"gene": ["A"]}))
    cfg = entry(s3_server, bucket_url="s3://private/rnaseq/", register_in_place=True)
    lake.s3 = [s3.location(cfg)]
    lake.load("counts", cfg, "s3")
    (lake.folder("counts", "s3") / "receipt.json").unlink()
    s3_server.put("private", "rnaseq/b.parquet", parquet({"gene": ["B"]}))
    lake.load("counts", cfg, "s3")  # every object looks new: a is kept, not added twice
    assert lake.query("SELECT gene FROM lake.s3.counts ORDER BY 1") == [("A",), ("B",)]
    s3_server.client().delete_object(Bucket="private", Key="rnaseq/b.parquet")
    (lake.folder("counts", "s3") / "receipt.json").unlink()  # lost again: the source cannot compare
    with pytest.raises(DatasetError, match=r"rnaseq/b\.parquet: an object registered in place was replaced or deleted"):
        lake.load("counts", cfg, "s3")


@pytest.mark.parametrize(
    "bucket_url, secret, cause",
    [
        ("s3://private/rnaseq/", "wrong-secret", r"access denied .*set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ("s3://no-such-bucket/rnaseq/", None, "no such bucket or key"),
    ],
)
def test_wrong_credentials_and_a_missing_bucket_are_one_clear_error(
    lake, s3_server, aws_env, monkeypatch, bucket_url, secret, cause
):
    s3_server.put("private", "rnaseq/a.csv", GENES)
    if secret:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(DatasetError, match=rf"^s3\.counts: {bucket_url}: {cause}") as error:
        lake.load("counts", entry(s3_server, bucket_url=bucket_url), "s3")
    assert s3_server.SECRET not in str(error.value)
    assert "; fix: " in str(error.value)
    assert not (lake.root / "lake").exists()


def test_a_private_bucket_refuses_anonymous_reads(lake, s3_server):
    s3_server.put("private", "rnaseq/a.csv", GENES)
    with pytest.raises(DatasetError, match=r"^s3\.counts: s3://private/rnaseq/: access denied"):
        lake.load("counts", entry(s3_server, bucket_url="s3://private/rnaseq/", anonymous=True), "s3")


def test_a_malformed_object_names_its_key(lake, s3_server, aws_env):
    s3_server.put("private", "rnaseq/good.parquet", parquet({"gene": ["A"]}))
    s3_server.put("private", "rnaseq/bad.parquet", b"PAR1 this is not parquet")
    cfg = entry(s3_server, bucket_url="s3://private/rnaseq/", register_in_place=True)
    with pytest.raises(DatasetError, match=r"^s3\.counts: s3://private/rnaseq/bad\.parquet: not a readable Parquet"):
        lake.load("counts", cfg, "s3")
    s3_server.put("private", "rnaseq/a.csv", b"gene,n\nA,1\n")
    s3_server.put("private", "rnaseq/bad.csv", b"gene,n\nA,1\nB,2,3\n")
    csv = entry(s3_server, bucket_url="s3://private/rnaseq/", file_glob="*.csv")
    with pytest.raises(DatasetError, match=r"^s3\.counts: .*bad\.csv: malformed csv"):
        lake.load("counts", csv, "s3")  # a.csv's package was extracted before bad.csv failed
    s3_server.put("private", "rnaseq/bad.csv", b"gene,n\nB,2\n")
    lake.load("counts", csv, "s3")
    assert lake.query("SELECT gene, n FROM lake.s3.counts ORDER BY gene") == [("A", 1), ("B", 2)]  # a.csv once


def test_a_type_change_in_one_object_never_drops_the_rows_of_the_others(lake, s3_server):
    s3_server.put("public", "rnaseq/a.csv", b"gene,n\nA,1\n")
    s3_server.put("public", "rnaseq/b.csv", b"gene,n\nB,2\n")
    cfg = entry(s3_server, anonymous=True)
    lake.load("counts", cfg, "s3")
    s3_server.put("public", "rnaseq/b.csv", b"gene,n\nB,two\n")  # n becomes text in b only
    with pytest.raises(
        DatasetError, match=r"^s3\.counts: .*schema conflict in column 'n': VARCHAR in the file, BIGINT"
    ):
        lake.load("counts", cfg, "s3")
    assert lake.query("SELECT gene, n FROM lake.s3.counts ORDER BY gene") == [("A", 1), ("B", 2)]


def test_config_refuses_credentials_in_the_endpoint():
    from omicslake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources.s3\[0\].endpoint_url: a user or password"):
        s3.datasets([{"name": "x", "bucket_url": "s3://b/", "endpoint_url": "http://me:pw@127.0.0.1:9000"}])


def test_workflow_on_s3_and_postgres_then_a_published_copy_read_by_plain_duckdb(tmp_path, s3_server, aws_env, pg_lake):
    """Issue 10 end to end: data path on S3, catalog in PostgreSQL, objects in place and staged,
    a rerun without jobs, `omicslake query`, then `omicslake publish` read by DuckDB alone."""
    import subprocess

    from omicslake.catalog import connect, s3_secret
    from standins.servers import PostgresServer
    from tests.conftest import REPO, run_snakemake, started_jobs, workflow_config

    s3_server.put("private", "rnaseq/a.parquet", parquet({"gene": ["A", "B"], "tpm": [1.0, 2.0]}))
    s3_server.put("public", "tables/genes.csv", b"gene,name\nA,alpha\nZ,zeta\n")
    sources = {
        "s3": [
            {"name": "tpm", "bucket_url": "s3://private/rnaseq/", "endpoint_url": s3_server.endpoint,
             "register_in_place": True},
            {"name": "genes", "bucket_url": "s3://public/tables/", "endpoint_url": s3_server.endpoint,
             "anonymous": True},
        ]
    }  # fmt: skip
    config = workflow_config(tmp_path, sources)
    config["lake"] = {"catalog": pg_lake.catalog, "data_path": "s3://private/lake/",
                      "s3": {"endpoint_url": s3_server.endpoint}}  # fmt: skip
    first = run_snakemake(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(started_jobs(first)) == [
        ("ingest_s3", "genes"),
        ("ingest_s3", "tpm"),
        ("register", "genes"),
        ("register", "tpm"),
    ]
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0 and started_jobs(again) == []
    omicslake = [str(REPO / ".venv" / "bin" / "omicslake"), "--config", str(tmp_path / "config.yaml")]
    query = "SELECT count(*) FROM lake.s3.tpm JOIN lake.s3.genes USING (gene)"
    shown = subprocess.run([*omicslake, "query", query], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"│\s+1\s+│", shown.stdout), shown.stdout  # the in-place table joins the staged one
    staged = s3_server.client().list_objects_v2(Bucket="private", Prefix="lake/s3/genes/")["Contents"]
    assert [o["Key"].endswith(".parquet") for o in staged] == [True]  # the staged CSV went straight to S3

    published = subprocess.run([*omicslake, "publish", "shared"], capture_output=True, text=True, cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    reader = connect("httpfs")  # plain DuckDB: the published file and a secret for the bucket, no catalog server
    reader.execute(s3_secret("bucket", {"scope": "s3://private/", "endpoint_url": s3_server.endpoint}))
    reader.execute(f"ATTACH 'ducklake:{tmp_path / 'shared' / 'omicslake.ducklake'}' AS lake (READ_ONLY)")
    assert reader.execute(query).fetchall() == [(1,)]
    secrets = (s3_server.SECRET.encode(), PostgresServer.PASSWORD.encode())
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in secrets)]
    assert leaked == []


def test_a_lake_whose_data_path_is_on_s3_gets_files_written_straight_there(tmp_path, s3_server, aws_env):
    """Staged Parquet goes once to its final key; registration moves and copies nothing."""
    from tests.conftest import Lake, write_gz

    lake = Lake(tmp_path)
    lake.data_path = "s3://private/lake/"
    lake.lake_s3 = {"endpoint_url": s3_server.endpoint}
    lake.s3 = [{"scope": lake.data_path, **lake.lake_s3}]
    source = write_gz(tmp_path / "src" / "genes.tsv.gz", "rowid\tgene\tscore\n1\tTP53\t1.5\n2\tMYC\t2.5\n")
    staged = lake.ingest("genes", {"url": f"file://{source}"})
    assert [f.path.rsplit("/", 1)[0] for f in staged.files] == ["s3://private/lake/http/genes"]
    assert not list(lake.staging.rglob("*.parquet"))  # nothing written locally
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket="private", Prefix="lake/")["Contents"]}
    first = lake.register("genes")
    after = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket="private", Prefix="lake/")["Contents"]}
    assert after == keys  # registration wrote, moved and copied no object
    assert lake.query("SELECT gene, score FROM lake.http.genes ORDER BY gene") == [("MYC", 2.5), ("TP53", 1.5)]
    assert lake.query("SELECT path FROM lake.omicslake.files") == [
        (f.path.removeprefix(lake.data_path),) for f in staged.files
    ]
    write_gz(source, "rowid\tgene\tscore\n1\tTP53\t9.0\n")  # `rowid`: retired by file name, an S3 URL
    os.utime(source, (1, 1))
    second = lake.load("genes", {"url": f"file://{source}"})
    assert second.snapshot_id == first.snapshot_id + 1
    assert lake.query("SELECT gene, score FROM lake.http.genes") == [("TP53", 9.0)]
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and s3_server.SECRET.encode() in p.read_bytes()]
    assert leaked == []

    from omicslake.verify import verify

    assert verify(lake.catalog, lake.data_path, lake.s3).ok  # `omicslake verify` on a bucket
    s3_server.client().delete_object(Bucket="private", Key=staged.files[0].path.removeprefix("s3://private/"))
    assert verify(lake.catalog, lake.data_path, lake.s3).problems == [
        {"file": staged.files[0].path, "problem": "missing"}
    ]
