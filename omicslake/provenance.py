"""Omicslake's provenance in the lake: the tables `omicslake.loads` (one row a load, in the
snapshot that registered it), `omicslake.files` (its data files, added or kept, with their rows,
bytes and upstream file) and `omicslake.upstream` (the upstream files it was made from), and
every query of them. DuckLake's own tables are `omicslake.catalog`'s.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from omicslake.catalog import ALIAS, ident, is_url, table_columns, table_exists
from omicslake.manifest import Manifest, StagedFile

PROVENANCE = f"""
BEGIN;
CREATE SCHEMA IF NOT EXISTS {ALIAS}.omicslake;
CALL {ALIAS}.set_option('auto_compact', false);
CREATE TABLE IF NOT EXISTS {ALIAS}.omicslake.loads (
    dataset VARCHAR, load_id VARCHAR, snapshot_id BIGINT, fingerprint VARCHAR,
    replaced_load_id VARCHAR, files BIGINT, rows BIGINT, bytes BIGINT,
    dlt_pipeline VARCHAR, workflow_version VARCHAR, registered_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE IF NOT EXISTS {ALIAS}.omicslake.files (
    dataset VARCHAR, load_id VARCHAR, snapshot_id BIGINT, table_name VARCHAR,
    path VARCHAR, rows BIGINT, bytes BIGINT, upstream VARCHAR);
ALTER TABLE {ALIAS}.omicslake.files ADD COLUMN IF NOT EXISTS upstream VARCHAR;
CREATE TABLE IF NOT EXISTS {ALIAS}.omicslake.upstream (
    dataset VARCHAR, load_id VARCHAR, snapshot_id BIGINT, url VARCHAR, checksum VARCHAR,
    size BIGINT, etag VARCHAR, last_modified VARCHAR, version VARCHAR, fetched_at VARCHAR);
COMMIT;
"""


def relative(path: Path | str, data_path: str) -> str:
    """How provenance records a file: relative to DATA_PATH when inside it, else as is (a URL)."""
    if isinstance(path, Path) and path.is_relative_to(data_path):
        return str(path.relative_to(data_path))
    return str(path).removeprefix(data_path) if is_url(data_path) else str(path)


def absolute(path: str, data_path: str) -> str:
    """A provenance path (relative to DATA_PATH) as DuckDB names the file."""
    return data_path + path if is_url(data_path) else str(Path(data_path, path))


def recorded(con) -> bool:
    """Does the lake have provenance tables (has anything been registered)?"""
    return table_columns(con, "omicslake", "loads") is not None


def current_load(con: duckdb.DuckDBPyConnection, dataset: str) -> dict | None:
    """The dataset's newest `omicslake.loads` row, with its `omicslake.files` rows as "files": a
    registration reads them once (each query of a provenance table scans DuckLake's catalog)."""
    row = con.execute(
        f"SELECT * FROM {ALIAS}.omicslake.loads WHERE dataset = ? ORDER BY snapshot_id DESC LIMIT 1", [dataset]
    ).fetchone()
    if not row:
        return None
    load = dict(zip([d[0] for d in con.description], row, strict=True))
    result = con.execute(
        f"SELECT * FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ? ORDER BY path",
        [dataset, load["load_id"]],
    )
    names = [d[0] for d in result.description]
    load["files"] = [dict(zip(names, r, strict=True)) for r in result.fetchall()]
    return load


def load_tables(load: dict) -> set[str]:
    """`<schema>.<table>` of the tables a load (`current_load`) registered files in."""
    return {f["table_name"] for f in load["files"]}


def tables_exist(con, load: dict) -> bool:
    """Every table the load registered files in still exists (nobody dropped one)."""
    return all(table_exists(con, *name.split(".", 1)) for name in load_tables(load))


def upstream_versions(con, dataset: str, load_id: str) -> dict[str, tuple[str | None, int | None]]:
    """{url: (etag, size)} of the upstream files a load was made from."""
    listed = con.execute(
        f"SELECT url, etag, size FROM {ALIAS}.omicslake.upstream WHERE dataset = ? AND load_id = ?",
        [dataset, load_id],
    ).fetchall()
    return {url: (etag, size) for url, etag, size in listed}


def has_in_place(con, qualified: str) -> bool:
    """Does the table hold files registered in place (objects that are not ours)?"""
    query = f"SELECT count(*) FROM {ALIAS}.omicslake.files WHERE table_name = ? AND path LIKE '%://%'"
    return bool(con.execute(query, [qualified]).fetchone()[0])


def write_provenance(
    con,
    manifest: Manifest,
    files: list[tuple[StagedFile, Path | str]],
    data_path: str,
    snapshot_id: int,
    current: dict | None,
    kept: list[dict],
) -> dict:
    """The load, its files (`files`, added: (staged file, destination); and `kept`) and its
    upstream files, in the load's snapshot; returns the load's row."""
    dataset, load_id = manifest.dataset, manifest.load_id
    key = {"dataset": dataset, "load_id": load_id, "snapshot_id": snapshot_id}
    row = {
        **key,
        "fingerprint": manifest.fingerprint,
        "replaced_load_id": current["load_id"] if current else None,
        "files": len(files) + len(kept),
        "rows": sum(s.rows for s, _ in files) + sum(k["rows"] for k in kept),
        "bytes": sum(s.bytes for s, _ in files) + sum(k["bytes"] for k in kept),
        "dlt_pipeline": manifest.pipeline,
        "workflow_version": manifest.workflow_version,
        "registered_at": datetime.now(UTC),
    }
    insert(con, "loads", [row])
    insert(
        con,
        "files",
        [
            {
                **key,
                "table_name": s.table,
                "path": relative(d, data_path),
                "rows": s.rows,
                "bytes": s.bytes,
                "upstream": s.upstream,
            }  # fmt: skip
            for s, d in files
        ]
        + [{**k, **key} for k in kept],
    )
    insert(con, "upstream", [{**key, **dataclasses.asdict(u)} for u in manifest.upstream])
    return row


def insert(con, table: str, rows: list[dict]) -> None:
    """Append rows to a provenance table in one statement (row-by-row inserts cost ms each)."""
    if rows:
        con.register("provenance_rows", pa.Table.from_pylist(rows))
        names = ", ".join(ident(n) for n in rows[0])
        con.execute(f"INSERT INTO {ALIAS}.omicslake.{table} ({names}) SELECT {names} FROM provenance_rows")
        con.unregister("provenance_rows")


def move_to_snapshot(con, dataset: str, load_id: str, snapshot_id: int) -> None:
    """Every provenance row of the load names `snapshot_id` (the snapshot DuckLake gave it)."""
    for table in ("loads", "files", "upstream"):
        con.execute(
            f"UPDATE {ALIAS}.omicslake.{table} SET snapshot_id = ? WHERE dataset = ? AND load_id = ?",
            [snapshot_id, dataset, load_id],
        )


def source_loads(con, source: str) -> list[tuple[str, str]]:
    """(dataset, load_id) of the current load of each dataset of a source."""
    return con.execute(
        f"SELECT dataset, arg_max(load_id, snapshot_id) FROM {ALIAS}.omicslake.loads "
        "WHERE dataset LIKE ? GROUP BY dataset",
        [f"{source}.%"],
    ).fetchall()


def source_tables(con, source: str) -> list[tuple[str, str, str]]:
    """(dataset, load_id, table) of every table any load of a source's datasets registered files in."""
    return con.execute(
        f"SELECT DISTINCT dataset, load_id, table_name FROM {ALIAS}.omicslake.files WHERE dataset LIKE ?",
        [f"{source}.%"],
    ).fetchall()


def newest_loads(con) -> list[tuple]:
    """Per dataset: dataset, its number of loads, then its newest load's load_id, snapshot_id,
    rows, files, bytes, registered_at (text), its upstream versions and upstream dates (lists)."""
    return con.execute(
        f"""SELECT l.dataset, l.loads, l.load_id, l.snapshot_id, l.rows, l.files, l.bytes, l.registered_at::VARCHAR,
                   list(DISTINCT u.version) FILTER (u.version IS NOT NULL),
                   list(DISTINCT u.last_modified) FILTER (u.last_modified IS NOT NULL)
            FROM (SELECT *, count(*) OVER (PARTITION BY dataset) AS loads FROM {ALIAS}.omicslake.loads
                  QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY snapshot_id DESC) = 1) l
            LEFT JOIN {ALIAS}.omicslake.upstream u USING (dataset, load_id)
            GROUP BY ALL"""
    ).fetchall()


def load_events(con) -> list[tuple[int, str, str, int, int]]:
    """(snapshot_id, snapshot time, dataset, rows, bytes) of every load in a snapshot the lake
    still has, oldest first."""
    return con.execute(
        f"""SELECT s.snapshot_id, s.snapshot_time::VARCHAR, l.dataset, l.rows, l.bytes
            FROM {ALIAS}.snapshots() s JOIN {ALIAS}.omicslake.loads l USING (snapshot_id)
            ORDER BY s.snapshot_id, l.dataset"""
    ).fetchall()
