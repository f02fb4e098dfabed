"""Checks of objects registered where they are (in place, or staged straight into a data path on
S3): nothing moves them, so registration reads what they hold now."""

from __future__ import annotations

import duckdb

from omicslake.catalog import file_size
from omicslake.errors import DatasetError, first_line
from omicslake.manifest import Manifest, StagedFile


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
