"""Table plans and schema changes: which files of a load go into which lake table and folder, the
columns to create or add (or the table to create anew), and carrying them out: the DDL and
`ducklake_add_data_files`."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import duckdb

from omicslake import provenance, staging
from omicslake.catalog import ALIAS, ident, is_url, no_compaction, table_columns, table_folder
from omicslake.errors import DatasetError
from omicslake.manifest import Manifest, StagedFile, check_file
from omicslake.register.in_place import check_in_place, object_size
from omicslake.sources.s3 import replaced

INTEGERS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT"]


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


def kept_files(con, manifest: Manifest, current: dict | None) -> list[dict]:
    """Provenance rows of the current load's files that this load keeps: those of the upstream
    files the source found unchanged, and in-place objects already registered (a lost receipt)."""
    if not current:
        return []
    files = current["files"]
    registered = {row["path"] for row in files}
    again = {f.upstream for f in manifest.files if f.in_place and f.path in registered}
    versions = {}  # of the current load's upstream files: only a load that keeps files needs them
    if manifest.kept or again:
        versions = provenance.upstream_versions(con, manifest.dataset, current["load_id"])
    if lost := sorted(set(manifest.kept) - versions.keys()):
        raise DatasetError(
            manifest.dataset,
            f"{len(lost)} upstream file(s) to keep are not in the lake's load {current['load_id']} "
            "(receipt out of date?)",
            lost[0],
            fix="run the workflow again: the next run loads everything afresh",
        )
    now = {u.url: (u.etag, u.size) for u in manifest.upstream}
    for url in sorted(again):
        if versions.get(url) != now.get(url):
            raise replaced(manifest.dataset, url)
    for row in files:  # an object registered in place that this load no longer lists: deleted?
        if is_url(row["path"]) and row["upstream"] not in now and object_size(con, manifest, row["path"]) is None:
            raise replaced(manifest.dataset, row["path"])
    keep = set(manifest.kept) | again
    return [row for row in files if row["upstream"] is not None and row["upstream"] in keep]


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
            droppable = bool(conflicts) and qualified not in kept_tables and not provenance.has_in_place(con, qualified)
            if droppable and owns_table(con, current, qualified):
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


def owns_table(con, current: dict | None, qualified: str) -> bool:
    """Every row of the table is from the dataset's current load."""
    if not current:
        return False
    schema, table = qualified.split(".", 1)
    ours = sum(f["rows"] for f in current["files"] if f["table_name"] == qualified)
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
            [ALIAS, plan.table, files_argument(con, [d for _, d in plan.files]), plan.schema, plan.hive],
        )


def files_argument(con, paths: list[Path | str]) -> str | list[str]:
    """One glob when it matches exactly these files, else the list.

    DuckLake globs each listed path on its own: a file system lookup per local file (~2.5 ms), a
    request per S3 object (1,000 objects on a local S3 server: 6.9 s as a list, 2.9 s as one glob),
    where a glob costs one listing. dlt names files `<load_id>.<file_id>.parquet`, so one load's files in a table folder
    share a prefix; objects registered in place usually share their folder.
    """
    names = [str(p) for p in paths]
    folders = {name.rsplit("/", 1)[0] for name in names}
    if len(names) > 1 and len(folders) == 1:
        literal = f"{folders.pop()}/{os.path.commonprefix([name.rsplit('/', 1)[1] for name in names])}"
        if not set("*?[]{}") & set(literal):
            pattern = literal + ("*.parquet" if all(name.endswith(".parquet") for name in names) else "*")
            try:
                matched = {row[0] for row in con.execute("SELECT file FROM glob(?)", [pattern]).fetchall()}
            except duckdb.Error:  # a bucket that may not be listed: DuckLake looks each object up
                return names
            if matched == set(names):
                return pattern
    return names
