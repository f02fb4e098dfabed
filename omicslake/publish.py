"""Publish a frozen, read-only copy of the lake (the Frozen DuckLake pattern).

`DEST/omicslake.ducklake` is a DuckDB-file catalog holding a copy of every catalog table (all
snapshots), whatever the live catalog is (a DuckDB file or PostgreSQL). `DEST/data/` mirrors the
lake's data folder with hard links (copies across filesystems) and is the copy's data path,
absolute: DuckLake 1.5.5 resolves a relative data path against the working directory, not the
catalog file. With `data_url`, the data path is that URL (the data folder served over https or
synced to a bucket) and nothing is copied. Objects registered in place keep their `s3://` URLs.
A consumer needs only DuckDB:

    ATTACH 'ducklake:DEST/omicslake.ducklake' AS lake (READ_ONLY)

(a copy moved elsewhere: add `DATA_PATH '<its data folder>/'`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import duckdb

from omicslake.catalog import copy_tables, is_file_catalog, is_url, normalise, open_lake, relocate
from omicslake.errors import OmicslakeError

log = logging.getLogger("omicslake")
CATALOG = "omicslake.ducklake"


def publish(catalog: str, data_path: str, dest: str | Path, data_url: str | None = None) -> dict:
    """Write the frozen copy into `dest`; return what was published."""
    dest = Path(dest).resolve()
    catalog, data_path = normalise(catalog, data_path)
    refuse_live(catalog, data_path, dest)
    dest.mkdir(parents=True, exist_ok=True)
    data_url = data_url or (data_path if is_url(data_path) else None)  # a lake on S3 is read where it is
    partial = dest / f".{CATALOG}.partial"
    partial.unlink(missing_ok=True)
    Path(f"{partial}.wal").unlink(missing_ok=True)  # of a publish that crashed: never replayed into this one
    with open_lake(catalog, data_path, read_only=True) as con:  # writers wait (file) or stay invisible (PostgreSQL)
        if is_file_catalog(catalog):
            shutil.copyfile(catalog, partial)
            if Path(f"{catalog}.wal").exists():  # changes not yet checkpointed into the file
                shutil.copyfile(f"{catalog}.wal", f"{partial}.wal")
        else:
            copy_tables(con, catalog.removeprefix("postgres:"), partial)
    with duckdb.connect(str(partial)) as copy:
        snapshot = relocate(copy, data_url or f"{dest / 'data'}/")
    linked = copied = 0
    if not data_url:
        linked, copied = mirror(Path(data_path), dest / "data")
    os.replace(partial, dest / CATALOG)  # the catalog last: a consumer never sees one without its data
    log.info("published snapshot %s to %s (%d files linked, %d copied)", snapshot, dest, linked, copied)
    return {"catalog": str(dest / CATALOG), "snapshot": snapshot, "linked": linked, "copied": copied}


def refuse_live(catalog: str, data_path: str, dest: Path) -> None:
    """A copy must not replace the live catalog, share its folder, or lie in (or hold) its data."""
    live = Path(catalog) if is_file_catalog(catalog) else None  # both absolute: `normalise`d
    data = None if is_url(data_path) else Path(data_path)
    if live and dest == live.parent:
        clash = f"the folder of the live catalog {live}"
    elif data and dest.is_relative_to(data):
        clash = f"inside the live data path {data}"
    elif data and data.is_relative_to(dest / "data"):
        clash = f"the parent of data path {data}"
    else:
        return
    raise OmicslakeError(
        f"publish destination {dest} is {clash}: the copy would overwrite or mix with the live lake",
        fix="publish into a folder outside the lake, e.g. results/published",
    )


def mirror(source: Path, target: Path) -> tuple[int, int]:
    """Hard-link every file under `source` into `target` (copy where a link cannot cross filesystems)."""
    linked = copied = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        out = target / path.relative_to(source)
        if out.exists() and out.stat().st_ino == path.stat().st_ino:
            continue  # published before: the same file
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        try:
            os.link(path, out)
            linked += 1
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copy2(path, out)
            copied += 1
    return linked, copied
