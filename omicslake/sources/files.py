"""Files of a record or an archive as tables (Zenodo, Kaggle): which files load, into which table,
and the one shape of the `<source>.files` table that lists them.

A file key is its path in the record or archive (a Zenodo zip's members: `<zip key>/<member>`).
A glob matches the whole key or its base name, so `counts*` picks `data.zip/counts_2.csv` too.
Every data table's rows carry the file key they came from in `file_key`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from omicslake.errors import DatasetError


def matches(key: str, globs: list[str] | dict) -> bool:
    base = PurePosixPath(key).name
    return any(fnmatch.fnmatchcase(key, g) or fnmatch.fnmatchcase(base, g) for g in globs)


def junk(key: str) -> bool:
    """Metadata macOS writes into archives: `__MACOSX/…`, `._name`, `.DS_Store`."""
    path = PurePosixPath(key)
    return "__MACOSX" in path.parts or path.name.startswith("._") or path.name == ".DS_Store"


def tabular(key: str, tables: dict[str, str]) -> str | None:
    """The format the file loads as; None for files only listed. A `.txt` is as often a README as
    a table, so it loads (as TSV) only when a `tables` glob names it."""
    from omicslake.formats import infer_format

    if junk(key):
        return None
    if ".txt" in [s.lower() for s in Path(key).suffixes] and not matches(key, tables):
        return None
    return infer_format(key)


def table_name(key: str, tables: dict[str, str]) -> str:
    """The table a file loads into: the first matching `tables` glob, else its stem in snake_case."""
    for pattern, table in tables.items():
        if matches(key, [pattern]):
            return table
    stem = PurePosixPath(key).name.split(".")[0]
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", stem).lower()).strip("_") or "table"


def files_table(record_id: str, record_version: str | None, files: list[dict]):
    """The `<source>.files` rows of one record version, every source alike: `key`, `size`,
    `checksum` (`algo:hex`, NULL where upstream publishes none), `url`, `loaded` (a file, or an
    archive with a member, that loads into a table) per file of `files`."""
    import pyarrow as pa

    text = pa.string()
    schema = pa.schema(
        [("record_id", text), ("record_version", text), ("key", text), ("size", pa.int64())]
        + [("checksum", text), ("url", text), ("loaded", pa.bool_())]
    )
    front = {"record_id": record_id, "record_version": record_version}
    return pa.Table.from_pylist([{**front, **f} for f in sorted(files, key=lambda f: f["key"])], schema)


def file_tables(
    dataset: str,
    files: dict[str, Path],
    tables: dict[str, str],
    front: dict[str, str | int],
    where: str,
) -> Iterator:
    """(table, Arrow table) of each tabular file's batches: `front` (constants) and `file_key`
    first. A read error names the file as `where` + its key."""
    import pyarrow as pa

    from omicslake.formats import read_batches
    from omicslake.reshape import constant

    for key, path in sorted(files.items()):
        if not (fmt := tabular(key, tables)):
            continue
        try:
            for batch in read_batches(dataset, path, fmt):
                n = batch.num_rows
                columns = {
                    k: constant(v, n) if isinstance(v, str) else pa.array([v] * n, pa.int64()) for k, v in front.items()
                }
                columns["file_key"] = constant(key, n)
                columns.update(zip(batch.schema.names, batch.columns, strict=True))
                yield table_name(key, tables), pa.table(columns)
        except DatasetError as e:
            raise DatasetError(dataset, e.cause, where + key, fix=e.fix) from None
