"""Retiring a dataset's previous load: its rows are deleted in the new load's snapshot, its files
stay (time travel still reads them)."""

from __future__ import annotations

from omicslake import provenance
from omicslake.catalog import ALIAS, ident, is_url, row_id_ranges, table_columns
from omicslake.errors import DatasetError


def retire_load(con, dataset: str, current: dict | None, data_path: str, skip: set[str], keep: set[str]) -> None:
    """Delete the rows of the dataset's previous load but those of `keep` (provenance paths); the
    files stay: time travel still reads them.

    Rows are found by DuckLake's row ids (kept through compaction) or, when a data column is
    called `rowid`, by file name; either way the count must match what that load registered.
    """
    if not current:
        return
    by_table: dict[str, list[tuple[str, int]]] = {}
    for f in current["files"]:
        if f["path"] not in keep:
            by_table.setdefault(f["table_name"], []).append((f["path"], f["rows"]))
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
            predicate, params = (
                "filename IN ?",
                [[p if is_url(p) else provenance.absolute(p, data_path) for p, _ in files]],
            )
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
