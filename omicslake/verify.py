"""`omicslake verify`: check the lake against its files.

Every data and delete file the catalog references (in any snapshot still kept: time travel needs
them) must exist with the size the catalog recorded, and a data file's footer must hold the row
count the catalog recorded. Parquet files under the data path that the catalog does not know are
listed too (a registration that died before COMMIT; `_dlt_*` bookkeeping of a lake on S3 is not
counted). Read-only: nothing is repaired or deleted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb

from omicslake.catalog import file_size, is_url, normalise, open_lake, referenced_files


@dataclasses.dataclass
class Report:
    files: int = 0  # files the catalog references
    problems: list[dict] = dataclasses.field(default_factory=list)  # {"file", "problem"}
    unknown: list[str] = dataclasses.field(default_factory=list)  # in the data path, not in the catalog

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unknown


def verify(catalog: str, data_path: str, s3: list[dict] | None = None) -> Report:
    _, data_path = normalise(catalog, data_path)
    report = Report()
    with open_lake(catalog, data_path, read_only=True, s3=s3) as con:
        files = referenced_files(con, data_path)
        report.files = len(files)
        present = []
        for file, size, rows in files:
            actual = file_size(con, file)
            if actual is None:
                report.problems.append({"file": file, "problem": "missing"})
            elif actual != size:
                report.problems.append({"file": file, "problem": f"size {actual} bytes, the catalog says {size}"})
            elif rows is not None:
                present.append((file, rows))
        if present:
            footers = dict(
                con.execute(
                    "SELECT file_name, sum(num_rows) FROM parquet_file_metadata(?) GROUP BY file_name",
                    [[file for file, _ in present]],
                ).fetchall()
            )
            for file, rows in present:
                if footers.get(file) != rows:
                    problem = f"footer holds {footers.get(file)} rows, the catalog says {rows}"
                    report.problems.append({"file": file, "problem": problem})
        known = {file for file, _, _ in files}
        report.unknown = [f for f in data_files(con, data_path) if f not in known]
    return report


def data_files(con: duckdb.DuckDBPyConnection, data_path: str) -> list[str]:
    """Parquet files under the data path, but dlt's own bookkeeping (`_dlt_*` folders)."""
    if is_url(data_path):
        found = [r[0] for r in con.execute("SELECT file FROM glob(?)", [f"{data_path}**/*.parquet"]).fetchall()]
    else:
        found = [str(p) for p in Path(data_path).rglob("*.parquet")]
    return sorted(f for f in found if not any(part.startswith("_dlt") for part in f.split("/")))


def render(report: Report) -> str:
    lines = [f"{p['file']}: {p['problem']}" for p in report.problems]
    lines += [f"{file}: not in the catalog" for file in report.unknown]
    verdict = "ok" if report.ok else f"{len(report.problems)} problem(s), {len(report.unknown)} unknown file(s)"
    return "\n".join([*lines, f"{report.files} files checked: {verdict}"])
