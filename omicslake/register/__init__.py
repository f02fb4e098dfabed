"""Register a staged load in DuckLake, zero-copy, in one snapshot.

For one manifest: check it against the files; plan each table (create, evolve with new nullable
columns, or stop on a type conflict; a staged file with no rows only declares its table: `plan`);
rename the files into the table's folder under DATA_PATH (never a copy: DuckLake then stores them
relative to DATA_PATH, so the lake is relocatable: `move`);
then in ONE transaction retire the dataset's previous files (`retire`), `ducklake_add_data_files`,
and write provenance rows (`omicslake.provenance`); finally write the receipt and clean dlt
leftovers. Nothing here deletes a file the catalog references. Objects registered where they are
are checked, not moved (`in_place`); DuckLake's own tables are read and set in `omicslake.catalog`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import duckdb

from omicslake import faults, provenance, staging
from omicslake.catalog import Session, committed_as, current_snapshot, protect, registered_paths, set_commit_message
from omicslake.errors import RERUN, DatasetError, OmicslakeError, first_line
from omicslake.manifest import Manifest, Receipt, utc_now
from omicslake.register.move import discard_orphans, move_back, move_into_lake, write_journal
from omicslake.register.plan import add_files, kept_files, plan_tables
from omicslake.register.retire import retire_load

log = logging.getLogger("omicslake")


def register(
    manifest_path: str | os.PathLike,
    catalog: str,
    data_path: str,
    receipt_path: str | os.PathLike,
    s3: list[dict] | None = None,
    session: Writer | None = None,
) -> Receipt:
    """Register the load described by `manifest_path`; write and return its receipt. `s3`: the
    locations of objects registered in place (`omicslake.sources.s3_locations`). `session`: a lake
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
            con.execute(provenance.PROVENANCE)
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
        current = provenance.current_load(con, dataset)
        live = current is not None and provenance.tables_exist(con, current)
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
        protect(con, provenance.load_tables(current))  # a crash before
        receipt = receipt_of(dataset, current, manifest, "unchanged")
        con.execute("COMMIT")
    except BaseException:
        with_rollback(con)
        raise
    unprotected.clear()
    receipt.snapshot_id = settle(con, dataset, current["load_id"], current["snapshot_id"])
    return receipt


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


def receipt_of(dataset: str, load_row: dict, manifest: Manifest, status: str) -> Receipt:
    files = [f["path"] for f in load_row["files"]]
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
    placed = [f for p in plans for f in p.files]  # (staged file, destination)
    journal = write_journal(workdir, plans)  # what to clean up should this process die before COMMIT
    moved = move_into_lake(dataset, plans)
    faults.point("rename")
    message = f"load {dataset} {manifest.load_id}"  # each load's snapshot carries this commit message
    try:
        snapshot_id = current_snapshot(con) + 1
        recreated = {f"{p.schema}.{p.table}" for p in plans if p.recreate}
        retire_load(con, dataset, current, data_path, skip=recreated, keep={row["path"] for row in kept})
        for plan in plans:
            add_files(con, plan)
        row = provenance.write_provenance(con, manifest, placed, data_path, snapshot_id, current, kept)
        extra = {"dataset": dataset, "load_id": manifest.load_id, "fingerprint": manifest.fingerprint}
        set_commit_message(con, message, json.dumps(extra))
        faults.point("commit")
        con.execute("COMMIT")
    except Exception as e:
        with_rollback(con)
        move_back(moved)  # back to staging: a rerun of register starts from the same state
        journal.unlink()
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(dataset, f"registration failed, catalog unchanged: {first_line(e)}", fix=RERUN) from e
    journal.unlink()
    row["snapshot_id"] = settle(con, dataset, manifest.load_id, snapshot_id)
    added = [staged for staged, _ in placed]
    log.info(
        "%s: registered %d files, %d rows in snapshot %s; kept %d",
        dataset, len(added), sum(f.rows for f in added), row["snapshot_id"], len(kept),
    )  # fmt: skip
    files = sorted([provenance.relative(d, data_path) for _, d in placed] + [k["path"] for k in kept])
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
        found = committed_as(con, f"load {dataset} {load_id}")
        actual = found if found is not None else recorded
        if actual != recorded:
            log.warning("%s: load landed in snapshot %s, not %s: correcting provenance", dataset, actual, recorded)
            con.execute("BEGIN")
            provenance.move_to_snapshot(con, dataset, load_id, actual)
            con.execute("COMMIT")
        return actual
    except duckdb.Error as e:
        with_rollback(con)
        log.warning("%s: after registering load %s: %s (retried on the next registration)", dataset, load_id, e)
        return recorded


def with_rollback(con) -> None:
    with contextlib.suppress(duckdb.Error):  # no transaction open
        con.execute("ROLLBACK")
