"""Register a staged load in DuckLake, zero-copy, in one snapshot.

For one manifest: check it against the files; plan each table (create, evolve with new nullable
columns, or stop on a type conflict; a staged file with no rows only declares its table); rename
the files into the table's folder under DATA_PATH (never a copy: DuckLake then stores them
relative to DATA_PATH, so the lake is relocatable);
then in ONE transaction retire the dataset's previous files, `ducklake_add_data_files`, and write
provenance rows; finally write the receipt and clean dlt leftovers. Nothing here deletes a file
the catalog references.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from omicslake import faults, staging
from omicslake.catalog import ALIAS, META, Session, file_size, ident, table_columns, table_exists
from omicslake.errors import RERUN, DatasetError, OmicslakeError, first_line
from omicslake.manifest import JOURNAL, Manifest, Receipt, StagedFile, check_file, utc_now
from omicslake.sources.s3 import replaced

log = logging.getLogger("omicslake")

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
INTEGERS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT"]


def relative(path: Path | str, data_path: str) -> str:
    """How provenance records a file: relative to DATA_PATH when inside it, else as is (a URL)."""
    if isinstance(path, Path) and path.is_relative_to(data_path):
        return str(path.relative_to(data_path))
    return str(path).removeprefix(data_path) if is_url(data_path) else str(path)


@dataclasses.dataclass
class TablePlan:
    schema: str
    table: str
    exists: bool
    folder: Path  # where the table's files live under DATA_PATH
    add_columns: list[tuple[str, str]]  # (name, DuckDB type) to create or add
    files: list[tuple[StagedFile, Path | str]]  # (staged file, destination: a path, or an in-place URL)
    recreate: bool = False  # the dataset owns the table and its column types changed: drop and create
    hive: bool = False  # its files leave columns to their folders (<column>=<value>/)

    @property
    def qualified(self) -> str:
        return f"{ALIAS}.{ident(self.schema)}.{ident(self.table)}"


def register(
    manifest_path: str | os.PathLike,
    catalog: str,
    data_path: str,
    receipt_path: str | os.PathLike,
    s3: list[dict] | None = None,
    session: Writer | None = None,
) -> Receipt:
    """Register the load described by `manifest_path`; write and return its receipt. `s3`: the
    locations of objects registered in place (`omicslake.config.s3_locations`). `session`: a lake
    held across many registrations (`omicslake.registrar`); without it, the lake is attached for
    this one."""
    manifest = Manifest.read(manifest_path)
    Path(receipt_path).unlink(missing_ok=True)  # only a registration that ends well leaves a receipt
    with contextlib.ExitStack() as stack:
        if session is None:
            session = Writer(catalog, data_path, s3)
            stack.callback(session.close)
        try:
            con = session.connection()
        except OmicslakeError as e:  # the catalog, not the dataset: the line still names the dataset
            raise DatasetError(manifest.dataset, e.message, fix=e.fix) from None
        receipt = register_load(con, manifest, Path(manifest_path).parent, session.data_path, session.unprotected)
    faults.point("receipt")
    receipt.write(receipt_path)
    staging.clean(Path(manifest_path).parent)
    return receipt


class Writer(Session):
    """The lake held for registrations: the provenance tables set up once per attach, and the
    tables earlier loads created whose auto_compact is still to be turned off (`protect`), which
    is done before the lake is let go at the latest."""

    def __init__(self, catalog: str, data_path: str, s3: list[dict] | None = None):
        super().__init__(catalog, data_path, s3)
        self.unprotected: set[str] = set()

    def connection(self) -> duckdb.DuckDBPyConnection:
        fresh = self.held is None
        con = super().connection()
        if fresh:
            con.execute(PROVENANCE)
        return con

    def release(self) -> None:
        if self.held is not None:
            protect_now(self.con, self.unprotected)
        super().release()


def register_load(con, manifest: Manifest, workdir: Path, data_path: str, unprotected: set[str]) -> Receipt:
    """Register one manifest's load on an attached lake (or find it there already). Its reads and
    writes share one transaction: DuckLake loads the catalog once per transaction, and a catalog
    of thousands of tables makes that the cost of a statement. `unprotected`: tables earlier loads
    created, whose auto_compact this load's transaction turns off (DuckLake refuses the option in
    the transaction that creates a table; the catalog-wide option covers them until then); the
    tables this load creates are added to it."""
    dataset = manifest.dataset
    con.execute("BEGIN")
    try:
        protect(con, unprotected)
        discard_orphans(con, workdir, manifest)
        current = current_load(con, dataset)
        live = current is not None and tables_exist(con, dataset, current)
        if not (live and current["fingerprint"] == manifest.fingerprint):
            if manifest.status == "unchanged":
                (workdir / "stamp.json").unlink(missing_ok=True)  # the next probe then says "new"
                raise DatasetError(
                    dataset,
                    "the source is unchanged, but the lake lost the load "
                    f"(it holds {current['load_id'] if current else 'none'}: a table dropped, or the catalog restored "
                    "from a backup?)",
                    fix="run the workflow again: the next run downloads it again",
                )
            receipt, created = load(con, manifest, data_path, current, workdir)
            unprotected.clear()
            unprotected.update(created)
            return receipt
        log.info("%s: unchanged, lake keeps load %s (snapshot %s)", dataset, current["load_id"], current["snapshot_id"])
        protect(con, {name for (name,) in load_tables(con, dataset, current["load_id"])})  # a crash before
        receipt = receipt_of(con, dataset, current, manifest, "unchanged")
        con.execute("COMMIT")
    except BaseException:
        with_rollback(con)
        raise
    unprotected.clear()
    receipt.snapshot_id = settle(con, dataset, current["load_id"], current["snapshot_id"])
    return receipt


def protect(con, tables: set[str]) -> None:
    """auto_compact off for those of `tables` (`<schema>.<table>`) that still exist (see `no_compaction`)."""
    for name in sorted(tables):
        schema, table = name.split(".", 1)
        if table_exists(con, schema, table):
            no_compaction(con, schema, table)


def protect_now(con, unprotected: set[str]) -> None:
    """Before the registrar lets the lake go: protect the tables the last loads created, in one transaction."""
    if unprotected:
        con.execute("BEGIN")
        try:
            protect(con, unprotected)
            con.execute("COMMIT")
            unprotected.clear()
        except duckdb.Error as e:
            with_rollback(con)
            log.warning(
                "cannot turn auto_compact off for %s yet: %s (the next registration tries again)", unprotected, e
            )


def load_tables(con, dataset: str, load_id: str) -> list[tuple[str]]:
    return con.execute(
        f"SELECT DISTINCT table_name FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ?",
        [dataset, load_id],
    ).fetchall()


def tables_exist(con, dataset: str, load_row: dict) -> bool:
    """Every table the load registered files in still exists (nobody dropped one)."""
    tables = load_tables(con, dataset, load_row["load_id"])
    return all(table_exists(con, *name.split(".", 1)) for (name,) in tables)


def discard_orphans(con, workdir: Path, manifest: Manifest) -> None:
    """Delete files an interrupted registration renamed into the lake but never committed.

    They are in no snapshot, so deleting them loses nothing; files this manifest is about to
    register (a rerun of the same registration) are kept.
    """
    journal = workdir / JOURNAL
    if not journal.exists():
        return
    entries = json.loads(journal.read_text())
    wanted = {Path(f.path).name for f in manifest.files}
    registered = registered_paths(con, sorted({(schema, table) for schema, table, _ in entries}))
    for _, _, dest in entries:
        path = Path(dest)
        if path.exists() and path.name not in wanted and dest not in registered:
            log.info("%s: removing %s, left unregistered by an interrupted run", manifest.dataset, path)
            path.unlink()
    journal.unlink()


def current_load(con: duckdb.DuckDBPyConnection, dataset: str) -> dict | None:
    row = con.execute(
        f"SELECT * FROM {ALIAS}.omicslake.loads WHERE dataset = ? ORDER BY snapshot_id DESC LIMIT 1", [dataset]
    ).fetchone()
    return dict(zip([d[0] for d in con.description], row, strict=True)) if row else None


def receipt_of(con, dataset: str, load_row: dict, manifest: Manifest, status: str) -> Receipt:
    files = [
        r[0]
        for r in con.execute(
            f"SELECT path FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ? ORDER BY path",
            [dataset, load_row["load_id"]],
        ).fetchall()
    ]
    return Receipt(
        dataset,
        status,
        load_row["load_id"],
        load_row["snapshot_id"],
        load_row["fingerprint"],
        manifest.upstream,
        files,
        load_row["rows"],
        utc_now(),
        manifest.config,
    )


def load(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, data_path: str, current: dict | None, workdir: Path
) -> tuple[Receipt, set[str]]:
    """Register the manifest's files in the open transaction and COMMIT; return the receipt and
    the tables the load created."""
    dataset = manifest.dataset
    kept = kept_files(con, manifest, current)
    if not manifest.files and not kept:
        raise DatasetError(
            dataset,
            "a changed load with no files: the manifest is corrupt",
            fix=f"delete the staging folder {workdir}, then run again",
        )
    plans = plan_tables(con, manifest, data_path, current, kept)
    already = registered_paths(con, [(p.schema, p.table) for p in plans if p.exists])
    for plan in plans:
        for _staged, dest in plan.files:
            if str(dest) in already:
                raise DatasetError(
                    dataset,
                    "file is already registered in the lake; refusing to add it twice",
                    str(dest),
                    fix=f"run `omicslake verify`; delete the staging folder {workdir}, then run again",
                )
    journal = workdir / JOURNAL  # what to clean up should this process die before COMMIT
    journal.write_text(json.dumps([[p.schema, p.table, str(d)] for p in plans for _, d in p.files]))
    moved = move_into_lake(dataset, plans)
    faults.point("rename")
    message = f"load {dataset} {manifest.load_id}"  # each load's snapshot carries this commit message
    try:
        snapshot_id = con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0] + 1
        recreated = {f"{p.schema}.{p.table}" for p in plans if p.recreate}
        retire(con, dataset, current, data_path, skip=recreated, keep={row["path"] for row in kept})
        for plan in plans:
            add_files(con, plan)
        row = write_provenance(con, manifest, plans, data_path, snapshot_id, current, kept)
        con.execute(
            f"CALL {ALIAS}.set_commit_message('omicslake', ?, extra_info => ?)",
            [
                message,
                json.dumps({"dataset": dataset, "load_id": manifest.load_id, "fingerprint": manifest.fingerprint}),
            ],
        )
        faults.point("commit")
        con.execute("COMMIT")
    except Exception as e:
        with_rollback(con)
        for src, dest in reversed(moved):
            dest.replace(src)  # back to staging: a rerun of register starts from the same state
        journal.unlink()
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(dataset, f"registration failed, catalog unchanged: {first_line(e)}", fix=RERUN) from e
    journal.unlink()
    row["snapshot_id"] = settle(con, dataset, manifest.load_id, snapshot_id)
    added = [staged for plan in plans for staged, _ in plan.files]
    log.info(
        "%s: registered %d files, %d rows in snapshot %s; kept %d",
        dataset, len(added), sum(f.rows for f in added), row["snapshot_id"], len(kept),
    )  # fmt: skip
    files = sorted([relative(d, data_path) for p in plans for _, d in p.files] + [k["path"] for k in kept])
    receipt = Receipt(
        dataset, "registered", manifest.load_id, row["snapshot_id"], manifest.fingerprint, manifest.upstream,
        files, row["rows"], utc_now(), manifest.config,
    )  # fmt: skip
    return receipt, {f"{p.schema}.{p.table}" for p in plans if not p.exists or p.recreate}


def settle(con, dataset: str, load_id: str, recorded: int) -> int:
    """After COMMIT (or on a rerun that found the load in place): provenance carries the snapshot
    DuckLake gave the load (another writer may have committed first). Nothing here can undo the
    load: a failure is logged, and the next registration of the dataset tries again."""
    try:
        found = con.execute(
            f"SELECT max(snapshot_id) FROM {META}.ducklake_snapshot_changes WHERE commit_message = ?",
            [f"load {dataset} {load_id}"],
        ).fetchone()
        actual = found[0] if found and found[0] is not None else recorded
        if actual != recorded:
            log.warning("%s: load landed in snapshot %s, not %s: correcting provenance", dataset, actual, recorded)
            con.execute("BEGIN")
            for table in ("loads", "files", "upstream"):
                con.execute(
                    f"UPDATE {ALIAS}.omicslake.{table} SET snapshot_id = ? WHERE dataset = ? AND load_id = ?",
                    [actual, dataset, load_id],
                )
            con.execute("COMMIT")
        return actual
    except duckdb.Error as e:
        with_rollback(con)
        log.warning("%s: after registering load %s: %s (retried on the next registration)", dataset, load_id, e)
        return recorded


def kept_files(con, manifest: Manifest, current: dict | None) -> list[dict]:
    """Provenance rows of the current load's files that this load keeps: those of the upstream
    files the source found unchanged, and in-place objects already registered (a lost receipt)."""
    if not current:
        return []
    result = con.execute(
        f"SELECT * FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ?",
        [manifest.dataset, current["load_id"]],
    )
    names = [d[0] for d in result.description]
    files = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    listed = con.execute(
        f"SELECT url, etag, size FROM {ALIAS}.omicslake.upstream WHERE dataset = ? AND load_id = ?",
        [manifest.dataset, current["load_id"]],
    ).fetchall()
    versions = {url: (etag, size) for url, etag, size in listed}
    if lost := sorted(set(manifest.kept) - versions.keys()):
        raise DatasetError(
            manifest.dataset,
            f"{len(lost)} upstream file(s) to keep are not in the lake's load {current['load_id']} "
            "(receipt out of date?)",
            lost[0],
            fix="run the workflow again: the next run loads everything afresh",
        )
    registered = {row["path"] for row in files}
    again = {f.upstream for f in manifest.files if f.in_place and f.path in registered}
    now = {u.url: (u.etag, u.size) for u in manifest.upstream}
    for url in sorted(again):
        if versions.get(url) != now.get(url):
            raise replaced(manifest.dataset, url)
    for row in files:  # an object registered in place that this load no longer lists: deleted?
        if is_url(row["path"]) and row["upstream"] not in now and object_size(con, manifest, row["path"]) is None:
            raise replaced(manifest.dataset, row["path"])
    keep = set(manifest.kept) | again
    return [row for row in files if row["upstream"] is not None and row["upstream"] in keep]


def with_rollback(con) -> None:
    with contextlib.suppress(duckdb.Error):  # no transaction open
        con.execute("ROLLBACK")


def plan_tables(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, data_path: str, current: dict | None, kept: list[dict]
) -> list[TablePlan]:
    """Check every file against its manifest entry and its lake table; decide DDL and destinations.

    New columns are added. A column whose type changed is an error, unless the dataset owns the
    table (all its rows are the dataset's current load): then the table is dropped and created
    anew in the load's snapshot, and time travel still reads the old one. Not when it holds files
    registered in place (expiring the dropped table's snapshots would delete those objects), nor
    when the load keeps files of the table (they would be dropped with it).
    """
    dataset, by_table = manifest.dataset, {}
    kept_paths, kept_tables = {row["path"] for row in kept}, {row["table_name"] for row in kept}
    for staged in manifest.files:
        if staged.path not in kept_paths:  # not an in-place object the current load registered already
            by_table.setdefault(staged.table, []).append(staged)
    lake_types: dict[str, list[tuple[str, str]]] = {}  # DuckDB types per distinct Arrow schema
    check_in_place(con, dataset, [f for files in by_table.values() for f in files if is_url(f.path)])
    plans = []
    for qualified, files in sorted(by_table.items()):
        schema, table = qualified.split(".", 1)
        folder = table_folder(con, schema, table, data_path)
        columns: dict[str, tuple[str, str]] = {}  # name -> (type, file that brought it)
        placed = []
        for staged in files:
            if is_url(staged.path):  # in place, or staged straight into a data path on S3
                dest = actual = staged.path
            else:
                dest = folder / staging.hive_folder(staged.partition) / Path(staged.path).name
                actual = staged.path if os.path.exists(staged.path) else str(dest)  # moved by an interrupted run
                check_file(dataset, staged, actual)  # so files with equal manifest schemas have equal types
            for name in staged.partition or {}:  # partition columns first: the folder holds them
                columns.setdefault(name, ("VARCHAR", Path(staged.path).name))
            key = json.dumps(staged.schema)
            if key not in lake_types:
                lake_types[key] = file_columns(con, actual)
            for name, type_ in lake_types[key]:
                known = columns.setdefault(name, (type_, Path(staged.path).name))
                if known[0] != type_:
                    raise DatasetError(
                        dataset,
                        f"column {name!r} is {known[0]} in {known[1]} but {type_} here",
                        Path(staged.path).name,
                        fix="make the files' column types agree upstream, or map them to separate tables",
                    )
            if staged.rows:
                placed.append((staged, dest))  # a file with no rows only declares its table
        existing = table_columns(con, schema, table)
        plan = TablePlan(schema, table, existing is not None, folder, [(n, t) for n, (t, _) in columns.items()], placed)
        plan.hive = any(staged.partition for staged in files)
        if plan.hive and "=" in data_path:
            raise DatasetError(
                dataset,
                f"lake.data_path {data_path!r} holds '=': DuckLake would read it as a column of partitioned "
                f"table {qualified}",
                fix="choose a lake.data_path without '='",
            )
        if existing is not None:
            conflicts = [(n, t, f) for n, (t, f) in columns.items() if n in existing and not compatible(t, existing[n])]
            droppable = qualified not in kept_tables and not has_in_place(con, qualified)
            if conflicts and droppable and owns_table(con, dataset, current, qualified):
                plan.recreate = True
            elif conflicts:
                name, type_, file = conflicts[0]
                raise DatasetError(
                    dataset,
                    f"schema conflict in column {name!r}: {type_} in the file, "
                    f"{existing[name]} in lake table {qualified}",
                    file,
                    fix=f"give the table another name in the config (or cast the column upstream); or, if its rows "
                    f"may go, drop table {qualified} (DuckDB with `omicslake attach`'s SQL) and run again",
                )
            else:
                plan.add_columns = [(n, t) for n, t in plan.add_columns if n not in existing]
        if plan.files or plan.add_columns or plan.recreate:
            plans.append(plan)
    return plans


def is_url(path: str) -> bool:
    return "://" in path


def object_size(con, manifest: Manifest, url: str) -> int | None:
    try:
        return file_size(con, url)
    except duckdb.Error as e:
        raise DatasetError(
            manifest.dataset,
            f"cannot tell whether the object exists: {first_line(e)}",
            url,
            fix="check the S3 credentials and endpoint, then run again",
        ) from None


def absolute(path: str, data_path: str) -> str:
    """A provenance path (relative to DATA_PATH) as DuckDB names the file."""
    return data_path + path if is_url(data_path) else str(Path(data_path, path))


def check_in_place(con, dataset: str, files: list[StagedFile]) -> None:
    """Objects already where they are registered (in place, or staged into a data path on S3) still
    have the rows the manifest describes (one read of all footers)."""
    if not files:
        return
    try:
        rows = dict(
            con.execute(
                "SELECT file_name, sum(num_rows) FROM parquet_file_metadata(?) GROUP BY file_name",
                [[f.path for f in files]],
            ).fetchall()
        )
    except duckdb.Error as e:
        raise DatasetError(
            dataset,
            f"cannot read the objects' Parquet footers: {first_line(e)}",
            files[0].path,
            fix="check the S3 credentials and endpoint, then run again",
        ) from None
    for staged in files:
        if rows.get(staged.path) != staged.rows:
            raise DatasetError(
                dataset,
                f"the object changed since it was listed ({rows.get(staged.path)} rows, not {staged.rows})",
                staged.path,
                fix="run the workflow again",
            )


def has_in_place(con, qualified: str) -> bool:
    """Does the table hold files registered in place (objects that are not ours)?"""
    query = f"SELECT count(*) FROM {ALIAS}.omicslake.files WHERE table_name = ? AND path LIKE '%://%'"
    return bool(con.execute(query, [qualified]).fetchone()[0])


def owns_table(con, dataset: str, current: dict | None, qualified: str) -> bool:
    """Every row of the table is from the dataset's current load."""
    if not current:
        return False
    schema, table = qualified.split(".", 1)
    ours = con.execute(
        f"SELECT coalesce(sum(rows), 0) FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ? "
        "AND table_name = ?",
        [dataset, current["load_id"], qualified],
    ).fetchone()[0]
    total = con.execute(f"SELECT count(*) FROM {ALIAS}.{ident(schema)}.{ident(table)}").fetchone()[0]
    return ours == total


def compatible(file_type: str, table_type: str) -> bool:
    """Same type, or an integer that fits the table's wider integer (DuckLake maps those)."""
    if file_type == table_type:
        return True
    if file_type in INTEGERS and table_type in INTEGERS:
        return INTEGERS.index(file_type) <= INTEGERS.index(table_type)
    return False


def file_columns(con, path: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()]


def table_folder(con, schema: str, table: str, data_path: str) -> Path:
    """The folder DuckLake uses for a table: files placed there are stored relative to DATA_PATH."""
    row = con.execute(
        f"SELECT s.path, s.path_is_relative, t.path, t.path_is_relative FROM {META}.ducklake_table t "
        f"JOIN {META}.ducklake_schema s USING (schema_id) WHERE s.schema_name = ? AND t.table_name = ? "
        "AND t.end_snapshot IS NULL AND s.end_snapshot IS NULL",
        [schema, table],
    ).fetchone()
    if row is None:
        row = con.execute(
            f"SELECT path, path_is_relative, ?, true FROM {META}.ducklake_schema "
            "WHERE schema_name = ? AND end_snapshot IS NULL",
            [f"{table}/", schema],
        ).fetchone()
    if row is None:
        row = (f"{schema}/", True, f"{table}/", True)  # DuckLake's default for a new schema and table
    schema_path, schema_rel, table_path, table_rel = row
    base = Path(schema_path) if not schema_rel else Path(data_path, schema_path)
    return Path(table_path) if not table_rel else base / table_path


def registered_paths(con, tables: list[tuple[str, str]]) -> set[str]:
    """Absolute paths of the data files DuckLake lists for these (schema, table) pairs."""
    paths = set()
    for schema, table in tables:
        if table_exists(con, schema, table):
            rows = con.execute("SELECT data_file FROM ducklake_list_files(?, ?, schema => ?)", [ALIAS, table, schema])
            paths.update(r[0] for r in rows.fetchall())
    return paths


def move_into_lake(dataset: str, plans: list[TablePlan]) -> list[tuple[Path, Path]]:
    """Rename staged files into their table folders; same filesystem only, never a copy."""
    moved = []
    try:
        for plan in plans:
            for staged, dest in plan.files:
                if is_url(staged.path):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = Path(staged.path)
                if not src.exists() and dest.exists():
                    continue  # moved by an interrupted earlier attempt
                os.rename(src, dest)
                moved.append((src, dest))
    except OSError as e:
        for src, dest in reversed(moved):
            dest.replace(src)
        fix = "check that lake.data_path is writable, then run again"
        if e.errno == 18:
            fix = "put staging and lake.data_path on the same filesystem (files are moved, not copied)"
        raise DatasetError(dataset, f"cannot move file into the lake: {e.strerror}", e.filename, fix=fix) from e
    return moved


def retire(con, dataset: str, current: dict | None, data_path: str, skip: set[str], keep: set[str]) -> None:
    """Delete the rows of the dataset's previous load but those of `keep` (provenance paths); the
    files stay: time travel still reads them.

    Rows are found by DuckLake's row ids (kept through compaction) or, when a data column is
    called `rowid`, by file name; either way the count must match what that load registered.
    """
    if not current:
        return
    rows = con.execute(
        f"SELECT table_name, path, rows FROM {ALIAS}.omicslake.files WHERE dataset = ? AND load_id = ?",
        [dataset, current["load_id"]],
    ).fetchall()
    by_table: dict[str, list[tuple[str, int]]] = {}
    for table_name, path, n in rows:
        if path not in keep:
            by_table.setdefault(table_name, []).append((path, n))
    for table_name, files in by_table.items():
        schema, table = table_name.split(".", 1)
        columns = table_columns(con, schema, table)
        if columns is None or table_name in skip:
            continue  # dropped outside omicslake, or about to be created anew
        if "rowid" not in columns:
            ranges = row_id_ranges(con, schema, table, [p for p, _ in files])
            predicate = " OR ".join(["rowid BETWEEN ? AND ?"] * len(ranges)) or "false"
            params = [bound for pair in ranges for bound in pair]
        elif "filename" not in columns:
            predicate, params = "filename IN ?", [[p if is_url(p) else absolute(p, data_path) for p, _ in files]]
        else:
            raise DatasetError(
                dataset,
                f"table {table_name} has data columns `rowid` and `filename`, which hide DuckLake's row identity",
                fix="rename one of the columns upstream",
            )
        target = f"{ALIAS}.{ident(schema)}.{ident(table)}"
        deleted = con.execute(f"DELETE FROM {target} WHERE {predicate}", params).fetchone()[0]
        expected = sum(n for _, n in files)
        if deleted != expected:
            raise DatasetError(
                dataset,
                f"cannot retire load {current['load_id']} from {table_name}: {deleted} of "
                f"{expected} rows found (changed outside omicslake?)",
                fix=f"run `omicslake verify`; if {table_name} was changed by hand, DROP it and run again (reloads it)",
            )


def row_id_ranges(con, schema: str, table: str, paths: list[str]) -> list[tuple[int, int]]:
    """Row id ranges of these data files of the table (provenance paths), adjacent ranges merged.
    A file in DATA_PATH is found by its name (dlt's names are unique), one in place by its URL."""
    names = [Path(p).name for p in paths if "://" not in p]
    urls = [p for p in paths if "://" in p]
    spans = con.execute(
        f"SELECT df.row_id_start, df.row_id_start + df.record_count - 1 FROM {META}.ducklake_data_file df "
        f"JOIN {META}.ducklake_table t USING (table_id) JOIN {META}.ducklake_schema s USING (schema_id) "
        "WHERE s.schema_name = ? AND t.table_name = ? AND t.end_snapshot IS NULL AND s.end_snapshot IS NULL "
        "AND df.end_snapshot IS NULL AND (CASE WHEN df.path_is_relative THEN regexp_extract(df.path, '[^/]*$') IN ? "
        "ELSE df.path IN ? END) ORDER BY 1",
        [schema, table, names or [""], urls or [""]],
    ).fetchall()
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def add_files(con, plan: TablePlan) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ALIAS}.{ident(plan.schema)}")
    if plan.recreate:
        con.execute(f"DROP TABLE {plan.qualified}")
    if not plan.exists or plan.recreate:
        columns = ", ".join(f"{ident(n)} {t}" for n, t in plan.add_columns)
        con.execute(f"CREATE TABLE {plan.qualified} ({columns})")
    else:
        for name, type_ in plan.add_columns:
            con.execute(f"ALTER TABLE {plan.qualified} ADD COLUMN {ident(name)} {type_}")
    if plan.exists and not plan.recreate:  # DuckLake refuses options on a table created in this transaction
        no_compaction(con, plan.schema, plan.table)
    if plan.files:
        # hive_partitioning: DuckLake would otherwise read `key=value` anywhere in a path (a data
        # path like /data/run=3/) as a column value, overriding the file's own
        con.execute(
            "CALL ducklake_add_data_files(?, ?, ?, schema => ?, allow_missing => true, hive_partitioning => ?)",
            [ALIAS, plan.table, files_argument([d for _, d in plan.files]), plan.schema, plan.hive],
        )


def no_compaction(con, schema: str, table: str) -> None:
    """DuckLake's compaction (CHECKPOINT, merge_adjacent_files) rewrites registered files and, once
    `expire_older_than`/`delete_older_than` are set, deletes the originals: ours and objects
    registered in place alike. Every table omicslake registers into opts out; so does the whole
    catalog (`PROVENANCE`), which covers a new table until its own option is set in the next
    transaction (`protect`)."""
    con.execute(f"CALL {ALIAS}.set_option('auto_compact', false, schema => ?, table_name => ?)", [schema, table])


def files_argument(paths: list[Path | str]) -> str | list[str]:
    """One glob when it matches exactly these files, else the list.

    DuckLake looks each listed path up in its catalog one by one (about 2.5 ms a file), a glob
    once: at 1,000 files that is several seconds. dlt names files `<load_id>.<file_id>.parquet`,
    so one load's files in a table folder share a prefix.
    """
    if not all(isinstance(p, Path) for p in paths):  # objects: their URLs
        return [str(p) for p in paths]
    literal = str(paths[0].parent / os.path.commonprefix([p.name for p in paths]))
    if len(paths) > 1 and not set("*?[]{}") & set(literal):
        pattern = f"{literal}*.parquet"
        if {Path(p) for p in glob.glob(pattern)} == set(paths):
            return pattern
    return [str(p) for p in paths]


def write_provenance(
    con,
    manifest: Manifest,
    plans: list[TablePlan],
    data_path: str,
    snapshot_id: int,
    current: dict | None,
    kept: list[dict],
) -> dict:
    """The load, its files (added and kept) and its upstream files, in the load's snapshot; returns
    the load's row."""
    dataset, load_id = manifest.dataset, manifest.load_id
    files = [f for p in plans for f in p.files]
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
