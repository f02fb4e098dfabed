"""Registration invariants: zero-copy, idempotent, atomic, replace-on-change, checked, relocatable."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from omicslake import provenance
from omicslake.catalog import connect, open_lake
from omicslake.errors import DatasetError, OmicslakeError
from omicslake.manifest import Manifest
from tests.conftest import write_gz

GENES = "gene_id\tsymbol\tscore\n1\tA1BG\t0.5\n2\tA2M\t-\n3\tNAT1\t1.25\n"


def parquet_files(root: Path) -> dict[int, tuple[str, int]]:
    """inode -> (path, size) of every Parquet file under root."""
    return {p.stat().st_ino: (str(p), p.stat().st_size) for p in root.rglob("*.parquet")}


@pytest.fixture
def genes(tmp_path):
    path = write_gz(tmp_path / "src" / "genes.tsv.gz", GENES)
    return path, {"url": f"file://{path}", "null_values": ["", "-"]}


def test_registration_is_zero_copy(lake, genes):
    _, cfg = genes
    manifest = lake.ingest("genes", cfg)
    staged = parquet_files(lake.root)
    assert staged and all(p.startswith(str(lake.staging)) for p, _ in staged.values())
    lake.register("genes")
    registered = parquet_files(lake.root)
    # the same inodes, the same bytes: renamed into the lake, never copied
    assert registered.keys() == staged.keys()
    assert sum(s for _, s in registered.values()) == sum(s for _, s in staged.values())
    assert all(p.startswith(lake.data_path) for p, _ in registered.values())
    assert lake.query("SELECT count(*), sum(score) FROM lake.http.genes") == [(3, 1.75)]
    assert len(manifest.files) == 1


def test_a_key_value_folder_in_the_data_path_is_not_read_as_a_column(tmp_path, genes):
    """DuckLake reads `key=value` path parts as columns unless told not to: a lake under
    `symbol=X/` must keep each row's own symbol."""
    from tests.conftest import Lake

    lake = Lake(tmp_path / "symbol=X")
    lake.load("genes", genes[1])
    assert lake.query("SELECT symbol FROM lake.http.genes ORDER BY gene_id") == [("A1BG",), ("A2M",), ("NAT1",)]


def test_a_package_a_killed_attempt_left_in_dlt_does_not_replace_the_new_rows(lake, genes):
    """A normalized package a killed chunk or ingest job left in the pipeline folder: the next
    attempt stages exactly its own rows (dlt 1.31 does; a dlt whose run() loaded the leftover
    instead, as its docs describe, would fail here)."""
    import dlt
    import pyarrow as pa

    from omicslake.staging import DLT_DATASET, pipeline_name

    folder = lake.folder("genes")
    killed = dlt.pipeline(
        pipeline_name=pipeline_name("http.genes"),
        pipelines_dir=str(folder / ".dlt"),
        destination=dlt.destinations.filesystem(bucket_url=str(folder / "parquet")),
        dataset_name=DLT_DATASET,
    )
    killed.extract(dlt.resource([pa.table({"stale": [1]})], name="genes"), loader_file_format="parquet")
    killed.normalize()  # then killed: a normalized package waits for its load step
    manifest = lake.ingest("genes", genes[1])
    assert [(f.table, f.rows) for f in manifest.files] == [("http.genes", 3)]
    lake.register("genes")
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_files_are_stored_relative_to_data_path(lake, genes):
    lake.load("genes", genes[1])
    con = connect()
    con.execute(f"ATTACH 'ducklake:{lake.catalog}' AS l (READ_ONLY)")
    rows = con.execute("SELECT path, path_is_relative FROM __ducklake_metadata_l.ducklake_data_file").fetchall()
    assert rows and all(relative and not path.startswith("/") for path, relative in rows)


def test_rerun_adds_no_snapshot_and_no_rows(lake, genes):
    lake.load("genes", genes[1])
    before = lake.snapshots()
    receipt = lake.load("genes", genes[1])
    assert receipt.status == "unchanged"
    assert lake.snapshots() == before
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]
    # even without the receipt (re-download, same bytes), the lake is untouched
    (lake.folder("genes") / "receipt.json").unlink()
    manifest = lake.ingest("genes", genes[1])
    assert manifest.status == "changed"
    assert lake.register("genes").status == "unchanged"
    assert lake.snapshots() == before
    assert not list(lake.staging.rglob("*.parquet"))  # the duplicate staging was cleaned


def test_changed_upstream_replaces_rows_in_one_snapshot(lake, genes):
    path, cfg = genes
    first = lake.load("genes", cfg)
    before = lake.snapshots()
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    second = lake.load("genes", cfg)
    assert second.status == "registered" and second.snapshot_id == first.snapshot_id + 1
    assert lake.snapshots() == before + 1
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]
    # the earlier version stays readable by time travel; its file is still on disk
    old = lake.query(f"SELECT count(*) FROM lake.http.genes AT (VERSION => {first.snapshot_id})")
    assert old == [(3,)]
    assert all(Path(lake.data_path, f).exists() for f in first.files + second.files)
    loads = lake.query("SELECT load_id, replaced_load_id FROM lake.omicslake.loads ORDER BY snapshot_id")
    assert loads == [(first.load_id, None), (second.load_id, first.load_id)]


def test_new_nullable_column_evolves_the_table(lake, genes):
    path, cfg = genes
    lake.load("genes", cfg)
    write_gz(path, "gene_id\tsymbol\tscore\tchrom\n5\tTP53\t9.5\t17\n")
    lake.load("genes", cfg)
    assert lake.query("SELECT gene_id, chrom FROM lake.http.genes") == [(5, 17)]
    columns = [r[0] for r in lake.query("DESCRIBE lake.http.genes")]
    assert columns == ["gene_id", "symbol", "score", "chrom"]


def test_type_change_recreates_a_table_the_dataset_owns(lake, genes):
    path, cfg = genes
    first = lake.load("genes", cfg)
    write_gz(path, "gene_id\tsymbol\tscore\nG1\tA1BG\t0.5\n")  # gene_id: BIGINT -> VARCHAR
    os.utime(path, (1, 1))
    lake.load("genes", cfg)
    assert lake.query("SELECT gene_id FROM lake.http.genes") == [("G1",)]
    old = f"SELECT count(*), typeof(any_value(gene_id)) FROM lake.http.genes AT (VERSION => {first.snapshot_id})"
    assert lake.query(old) == [(3, "BIGINT")]


def test_schema_conflict_in_a_shared_table_stops_with_file_column_and_types(lake, genes):
    path, cfg = genes
    lake.load("genes", cfg)
    with open_lake(lake.catalog, lake.data_path) as con:  # rows that are not this dataset's
        con.execute("INSERT INTO lake.http.genes VALUES (99, 'OTHER', 1.0)")
    before = lake.snapshots()
    write_gz(path, "gene_id\tsymbol\tscore\nG1\tA1BG\t0.5\n")
    manifest = lake.ingest("genes", cfg)
    staged = Path(manifest.files[0].path)
    with pytest.raises(DatasetError) as err:
        lake.register("genes")
    message = str(err.value)
    assert message.startswith(f"http.genes: {staged.name}: schema conflict in column 'gene_id'")
    assert "VARCHAR in the file, BIGINT in lake table http.genes" in message
    assert "; fix: give the table another name in the config" in message
    assert lake.snapshots() == before
    assert staged.exists()  # nothing moved into the lake
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]


def test_failure_inside_registration_leaves_catalog_unchanged_and_rerun_completes(lake, genes, monkeypatch):
    lake.ingest("genes", genes[1])
    staged = parquet_files(lake.root)

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(provenance, "write_provenance", crash)
    with pytest.raises(DatasetError, match="registration failed, catalog unchanged: disk full"):
        lake.register("genes")
    assert lake.query("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'http'") == [
        (0,)
    ]
    assert parquet_files(lake.root) == staged  # moved back to staging
    monkeypatch.undo()
    assert lake.register("genes").status == "registered"
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def killed_before_commit(lake, monkeypatch):
    """Register, but die (no except handler runs) between the rename and COMMIT."""

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # like SIGKILL: no cleanup in omicslake's except clauses

    monkeypatch.setattr(provenance, "write_provenance", die)
    with pytest.raises(KeyboardInterrupt):
        lake.register("genes")
    monkeypatch.undo()


def test_killed_before_commit_then_register_reruns(lake, genes, monkeypatch):
    lake.ingest("genes", genes[1])
    killed_before_commit(lake, monkeypatch)
    assert list(Path(lake.data_path).rglob("*.parquet"))  # renamed into the lake, not registered
    assert lake.register("genes").status == "registered"
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_killed_before_commit_then_the_whole_workflow_reruns(lake, genes, monkeypatch):
    lake.ingest("genes", genes[1])
    killed_before_commit(lake, monkeypatch)
    orphan = next(Path(lake.data_path).rglob("*.parquet"))
    receipt = lake.load("genes", genes[1])  # ingest stages a new load id; the orphan goes
    assert not orphan.exists()
    assert [p.name for p in Path(lake.data_path, "http").rglob("*.parquet")] == [Path(receipt.files[0]).name]
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_a_dropped_table_is_loaded_again(lake, genes):
    lake.load("genes", genes[1])
    with open_lake(lake.catalog, lake.data_path) as con:
        con.execute("DROP TABLE lake.http.genes")
    assert lake.ingest("genes", genes[1]).status == "unchanged"  # the receipt knows no better
    with pytest.raises(
        DatasetError, match="lake lost the load .*; fix: run the workflow again: the next run downloads it again"
    ):
        lake.register("genes")
    assert lake.load("genes", genes[1]).status == "registered"
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_a_file_is_never_registered_twice(lake, genes):
    lake.load("genes", genes[1])
    manifest_path = lake.folder("genes") / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["fingerprint"] = "sha256:" + "f" * 64  # a replayed manifest that claims to be new
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="already registered"):
        lake.register("genes")
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_manifest_that_lies_about_its_file_is_rejected(lake, genes):
    lake.ingest("genes", genes[1])
    manifest_path = lake.folder("genes") / "manifest.json"
    manifest = Manifest.read(manifest_path)
    manifest.files[0].rows = 99
    manifest.write(manifest_path)
    with pytest.raises(DatasetError, match=r"does not match its manifest: rows 3 != 99"):
        lake.register("genes")
    assert lake.query("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'http'") == [(0,)]


@pytest.mark.parametrize("damage", ["footer", "missing", "rewritten"])
def test_a_staged_file_damaged_or_missing_before_registration_is_one_clear_error(lake, genes, damage):
    manifest = lake.ingest("genes", genes[1])
    staged = Path(manifest.files[0].path)
    if damage == "footer":
        data = bytearray(staged.read_bytes())
        data[-12:-8] = b"\xff\xff\xff\x7f"  # the footer length: points outside the file
        staged.write_bytes(bytes(data))
        cause = r"staged file is not readable Parquet"
    elif damage == "rewritten":  # same size, rows and schema: only the bytes differ
        data = staged.read_bytes()
        staged.write_bytes(data)
        os.utime(staged, ns=(staged.stat().st_atime_ns, staged.stat().st_mtime_ns + 1_000_000_000))
        cause = r"file was rewritten after its manifest"
    else:
        staged.unlink()
        cause = r"staged file is missing"
    with pytest.raises(DatasetError, match=rf"^http\.genes: {staged}: {cause}"):
        lake.register("genes")
    assert not (lake.folder("genes") / "receipt.json").exists()
    assert lake.query("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'http'") == [(0,)]


def test_provenance_is_queryable_in_the_lake(lake, genes):
    path, cfg = genes
    receipt = lake.load("genes", cfg)
    rows = lake.query("""
        SELECT l.snapshot_id, s.snapshot_id, u.url, u.checksum, f.path, f.rows, l.workflow_version
        FROM lake.omicslake.loads l
        JOIN lake.omicslake.files f USING (dataset, load_id)
        JOIN lake.omicslake.upstream u USING (dataset, load_id)
        JOIN lake.snapshots() s ON s.commit_message = 'load ' || l.dataset || ' ' || l.load_id
        WHERE l.dataset = 'http.genes'""")
    assert len(rows) == 1
    snap, actual_snap, url, checksum, file_path, n, version = rows[0]
    assert snap == actual_snap == receipt.snapshot_id
    assert url == cfg["url"] and checksum == receipt.upstream[0].checksum
    assert file_path == receipt.files[0] and n == 3 and version


def test_lake_is_readable_after_moving_its_directory(lake, genes, tmp_path):
    lake.load("genes", genes[1])
    moved = tmp_path / "elsewhere"
    shutil.move(lake.root / "lake", moved)
    con = connect()
    con.execute(
        f"ATTACH 'ducklake:{moved}/omicslake.ducklake' AS l (DATA_PATH '{moved}/data/', "
        "OVERRIDE_DATA_PATH true, READ_ONLY)"
    )
    assert con.execute("SELECT sum(score) FROM l.http.genes").fetchall() == [(1.75,)]


def test_datasets_share_a_lake_independently(lake, genes, tmp_path):
    lake.load("genes", genes[1])
    other = tmp_path / "src" / "other.csv"
    other.write_text("a,b\n1,x\n")
    lake.load("other", {"url": f"file://{other}"})
    path, cfg = genes
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    lake.load("genes", cfg)  # replacing genes leaves other untouched
    assert lake.query("SELECT count(*) FROM lake.http.other") == [(1,)]
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]


def test_a_reader_waits_for_the_writer_instead_of_failing(lake, genes):
    lake.load("genes", genes[1])
    result = {}
    reader = threading.Thread(target=lambda: result.update(rows=lake.query("SELECT count(*) FROM lake.http.genes")))
    with open_lake(lake.catalog, lake.data_path):  # a registration in progress
        reader.start()
        reader.join(1.0)
        assert reader.is_alive()  # waiting on the lock, not failing on DuckDB's
    reader.join(30)
    assert result["rows"] == [(3,)]


def test_dlt_state_persists_in_the_staging_folder_across_runs(lake, genes):
    path, cfg = genes
    lake.load("genes", cfg)
    state = lake.folder("genes") / ".dlt" / "http__genes" / "state.json"
    assert state.exists()  # survives registration's cleanup of dlt leftovers
    assert not (lake.folder("genes") / "parquet").exists()
    assert not list((lake.folder("genes") / ".dlt").rglob("loaded/*"))
    first = json.loads(state.read_text())["_local"]
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    lake.load("genes", cfg)
    second = json.loads(state.read_text())["_local"]  # the same pipeline, carried forward
    assert first["first_run"] is False and second["first_run"] is False  # not a new pipeline each run
    assert second["_last_extracted_hash"] == first["_last_extracted_hash"]  # the same state, read back


def test_empty_upstream_fails_and_keeps_the_current_load(lake, genes):
    path, cfg = genes
    lake.load("genes", cfg)
    write_gz(path, "gene_id\tsymbol\tscore\n")
    os.utime(path, (1, 1))
    with pytest.raises(DatasetError, match="http.genes: the source has no rows .*the lake keeps its current load"):
        lake.ingest("genes", cfg)
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_format_that_cannot_be_inferred_names_the_url(lake, tmp_path):
    (tmp_path / "table.dat").write_text("a\n1\n")
    with pytest.raises(DatasetError, match=r"http.t: file:.*table\.dat: cannot infer the format from the URL"):
        lake.ingest("t", {"url": f"file://{tmp_path}/table.dat"})


@pytest.mark.parametrize("column", ["filename", "rowid"])
def test_replacing_works_when_a_data_column_shadows_duckdb_virtual_columns(lake, tmp_path, column):
    sheet = tmp_path / "src" / "sheet.csv"
    sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.write_text(f"sample,{column}\nS1,a.fastq\nS2,b.fastq\n")
    cfg = {"url": f"file://{sheet}"}
    lake.load("sheet", cfg)
    sheet.write_text(f"sample,{column}\nS1,a.fastq\nS2,b.fastq\nS3,c.fastq\n")
    os.utime(sheet, (1, 1))
    lake.load("sheet", cfg)
    assert lake.query("SELECT count(*) FROM lake.http.sheet") == [(3,)]


def test_a_config_change_reloads_even_when_the_upstream_is_unchanged(lake, genes):
    path, cfg = genes
    lake.load("genes", {"url": cfg["url"]})  # "-" is text
    assert lake.query("SELECT typeof(score) FROM lake.http.genes LIMIT 1") == [("VARCHAR",)]
    before = lake.snapshots()
    receipt = lake.load("genes", cfg)  # now "-" is NULL: the same bytes make other tables
    assert receipt.status == "registered" and lake.snapshots() == before + 1
    assert lake.query("SELECT typeof(score), count(score) FROM lake.http.genes GROUP BY ALL") == [("DOUBLE", 2)]


def test_paths_with_spaces(tmp_path, genes):
    from tests.conftest import Lake

    lake = Lake(tmp_path / "core facility" / "lake 1")
    lake.load("genes", genes[1])
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]


def test_a_foreign_duckdb_session_is_waited_for_then_reported(lake, genes):
    lake.load("genes", genes[1])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from omicslake.catalog import connect; con = connect(); "
            f"con.execute(\"ATTACH 'ducklake:{lake.catalog}' AS l (READ_ONLY)\"); print('attached', flush=True); "
            "time.sleep(4)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "attached"
        with (
            pytest.raises(OmicslakeError, match=r"cannot open the lake catalog .*is a DuckDB session attached"),
            open_lake(lake.catalog, lake.data_path, wait_seconds=1),
        ):
            pass
        with open_lake(lake.catalog, lake.data_path, wait_seconds=60) as con:  # waits for the session to end
            assert con.execute("SELECT count(*) FROM lake.http.genes").fetchone() == (3,)
    finally:
        holder.kill()


def test_a_receipt_of_a_load_the_catalog_lacks_is_one_clear_error_then_reloads(lake, genes):
    """The catalog restored from an older backup: the receipt names a load (and snapshot) it never had."""
    from omicslake.verify import verify

    path, cfg = genes
    lake.load("genes", cfg)
    backup = Path(lake.catalog).read_bytes()
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    lost = lake.load("genes", cfg)
    Path(lake.catalog).write_bytes(backup)  # the restore: load `lost` is gone, its file stays
    with pytest.raises(
        DatasetError,
        match=r"^http\.genes: the source is unchanged, but the lake lost the load .* restored from a backup",
    ):
        lake.load("genes", cfg)
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(3,)]  # unchanged: the restored state
    again = lake.load("genes", cfg)  # the next run fetches afresh
    assert again.status == "registered" and lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]
    report = verify(lake.catalog, lake.data_path)
    assert report.problems == [] and report.unknown == [str(Path(lake.data_path, f)) for f in lost.files]
