"""What the lake holds and how each dataset's last jobs went: `omicslake status` and the run report.

Read-only: the catalog (tables, snapshots, `omicslake.loads` / `upstream`) and the staging folders
(receipts, job outcomes, leftovers). A dataset counts as failed while its newest job outcome is a
failure: a later successful run clears it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
from datetime import datetime
from pathlib import Path

from omicslake import provenance, sources
from omicslake.catalog import open_lake, table_files
from omicslake.errors import OmicslakeError
from omicslake.jobs import OUTCOMES, UNFINISHED, Outcome
from omicslake.manifest import JOURNAL
from omicslake.progress import size

BOOKKEEPING = {"stamp.json", "manifest.json", "receipt.json", "chunks.json"}


@dataclasses.dataclass
class Table:
    table: str
    rows: int
    files: int
    bytes: int


@dataclasses.dataclass
class Snapshot:
    snapshot_id: int
    time: str
    loads: list[str]  # "<dataset> (<rows> rows)" of the loads it registered
    rows: int  # the lake's rows and bytes after it (of omicslake's loads)
    bytes: int


@dataclasses.dataclass
class Dataset:
    dataset: str
    state: str  # "registered" | "staged" (not registered yet) | "not loaded" | "failed" | "unfinished" (killed?)
    loads: int = 0  # registered over time (a replaced load counts)
    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    snapshot_id: int | None = None
    registered_at: str | None = None
    upstream_version: str | None = None
    upstream_date: str | None = None  # the newest of its upstream files
    seconds: float | None = None  # its last ingest and registration jobs
    last_job_at: str | None = None
    failed_step: str | None = None
    cause: str | None = None
    failed_at: str | None = None
    log: str | None = None


@dataclasses.dataclass
class Leftover:
    dataset: str
    kind: str
    files: int
    bytes: int


@dataclasses.dataclass
class Status:
    catalog: str
    lake_error: str | None  # the catalog could not be read: why
    tables: list[Table]
    snapshots: list[Snapshot]  # newest first
    datasets: list[Dataset]
    leftovers: list[Leftover]

    @property
    def failed(self) -> list[Dataset]:
        return [d for d in self.datasets if d.state in ("failed", "unfinished")]


def collect(config: dict, snapshots: int = 10, wait_seconds: float = 10) -> Status:
    """The status of the lake and datasets of a (validated) workflow config; a registration
    holding the lake longer than `wait_seconds` leaves it out."""
    lake = config["lake"]
    tables, history, loads, lake_error = [], [], {}, None
    try:
        s3 = sources.s3_locations(config)
        with open_lake(lake["catalog"], lake["data_path"], read_only=True, wait_seconds=wait_seconds, s3=s3) as con:
            tables = lake_tables(con)
            if provenance.recorded(con):
                loads, history = current_loads(con), lake_history(con)
    except OmicslakeError as e:  # no lake yet, or it cannot be read: the datasets still show
        lake_error = str(e)
    staging = Path(config["staging"])
    names = {f"{source}.{name}" for source, name in sources.datasets(config)} | set(loads)
    folders = {name: staging.joinpath(*name.split(".", 1)) for name in sorted(names)}
    datasets = [dataset_status(name, loads.get(name), folder) for name, folder in folders.items()]
    leftovers = [left for name, folder in folders.items() for left in staging_leftovers(name, folder)]
    return Status(lake["catalog"], lake_error, tables, history[::-1][:snapshots], datasets, leftovers)


def lake_tables(con) -> list[Table]:
    """Every table of the lake with its rows, data files and bytes, from the catalog (`catalog.table_files`)."""
    return [Table(f"{schema}.{table}", rows, files, size) for schema, table, files, size, rows in table_files(con)]


def current_loads(con) -> dict[str, dict]:
    """{dataset: its newest load, with its upstream version and newest upstream date}."""
    rows = provenance.newest_loads(con)
    keys = ("loads", "load_id", "snapshot_id", "rows", "files", "bytes", "registered_at")
    loads = {}
    for dataset, *values, versions, dates in rows:
        load = dict(zip(keys, values, strict=True))
        load["upstream_version"] = ", ".join(sorted(versions or [])[:3]) or None
        load["upstream_date"] = max((iso(d) for d in dates or []), default=None)
        loads[dataset] = load
    return loads


def lake_history(con) -> list[Snapshot]:
    """Every snapshot that registered a load, oldest first, with the lake's size after it."""
    events = provenance.load_events(con)
    current: dict[str, tuple[int, int]] = {}  # a dataset's newest load replaces its previous one
    history: list[Snapshot] = []
    total_rows = total_bytes = 0  # of the current loads, kept as they change (not summed anew per event)
    for snapshot_id, time, dataset, rows, data_bytes in events:
        old_rows, old_bytes = current.get(dataset, (0, 0))
        current[dataset] = (rows or 0, data_bytes or 0)
        total_rows += (rows or 0) - old_rows
        total_bytes += (data_bytes or 0) - old_bytes
        totals = total_rows, total_bytes
        if history and history[-1].snapshot_id == snapshot_id:
            history[-1].loads.append(f"{dataset} ({rows} rows)")
            history[-1].rows, history[-1].bytes = totals
        else:
            history.append(Snapshot(snapshot_id, time, [f"{dataset} ({rows} rows)"], *totals))
    return history


def dataset_status(name: str, load: dict | None, folder: Path) -> Dataset:
    outcomes = Outcome.read_all(folder)
    state = "registered" if load else "not loaded"
    if load is None and (folder / "manifest.json").exists():
        state = "staged"
    found = Dataset(name, state, **{k: v for k, v in (load or {}).items() if k != "load_id"})
    found.seconds = round(sum(o.seconds or 0 for o in outcomes if o.ok), 3) or None
    found.last_job_at = outcomes[-1].started_at if outcomes else None
    failures = [o for o in outcomes if not o.ok]  # a later step's success removes them (jobs.forget)
    if failures:
        failed = failures[-1]
        cause = (failed.cause or UNFINISHED).removeprefix(f"{name}: ")  # the dataset is named already
        if failed.slurm_job:
            cause += f" (SLURM job {failed.slurm_job})"
        found.state = "failed" if failed.ok is False else "unfinished"
        found.failed_step, found.cause, found.failed_at, found.log = failed.step, cause, failed.started_at, failed.log
    return found


def staging_leftovers(name: str, folder: Path) -> list[Leftover]:
    """Bytes in a dataset's staging folder beyond its bookkeeping: interrupted downloads (`*.part`),
    staged Parquet not registered yet, dlt load packages never loaded."""
    found: dict[str, list[int]] = {}
    if not folder.is_dir():
        return []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if relative.parts[0] == "chunk" and len(relative.parts) > 2:  # a chunk's folder holds the same
            relative = Path(*relative.parts[2:])
        if not path.is_file() or relative.parts[0] == OUTCOMES or str(relative) in BOOKKEEPING:
            continue
        if relative.parts[0] == ".dlt":
            if not {"new", "normalized"} & set(relative.parts):  # pipeline state, schemas, trace
                continue
            kind = "dlt load package"
        elif path.name.startswith("_dlt") or path.name == "init" or "_dlt_loads" in relative.parts:
            continue  # dlt's filesystem destination bookkeeping beside the staged files
        elif path.name == JOURNAL:
            kind = "interrupted registration (the next run completes or undoes it)"
        elif path.name.endswith((".part", ".part.json")):
            kind = "interrupted download"
        elif path.suffix == ".parquet":
            kind = "staged Parquet, not registered"
        else:
            kind = "download"
        count = found.setdefault(kind, [0, 0])
        count[0] += 1
        count[1] += path.stat().st_size
    return [Leftover(name, kind, files, size) for kind, (files, size) in sorted(found.items())]


def iso(date: str) -> str:
    """An upstream date (ISO, or HTTP's RFC 1123) as ISO 8601, for sorting and display."""
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(date).isoformat()
    with contextlib.suppress(TypeError, ValueError):
        return email.utils.parsedate_to_datetime(date).isoformat()
    return date


def render(status: Status) -> str:
    """The status as plain text tables, for a terminal or a log."""
    out = [f"lake {status.catalog}"]
    if status.lake_error:
        out.append(f"  {status.lake_error}")
    out += table(
        "tables", ["table", "rows", "files", "size"], [[t.table, t.rows, t.files, size(t.bytes)] for t in status.tables]
    )
    out += table(
        "latest snapshots",
        ["snapshot", "time", "rows in lake", "loads"],
        [[s.snapshot_id, s.time[:19], s.rows, "; ".join(s.loads)] for s in status.snapshots],
    )
    out += table(
        "datasets",
        ["dataset", "state", "rows", "size", "snapshot", "upstream version", "upstream date"],
        [
            [
                d.dataset,
                d.state,
                d.rows,
                d.bytes and size(d.bytes),
                d.snapshot_id,
                d.upstream_version,
                (d.upstream_date or "")[:10],
            ]
            for d in status.datasets
        ],
    )
    if status.failed:
        out.append("\nfailed (until a later run succeeds):")
        out += [f"  {d.dataset}: {d.failed_step} at {d.failed_at}: {d.cause}\n    log: {d.log}" for d in status.failed]
    out += table(
        "staging leftovers",
        ["dataset", "what", "files", "size"],
        [[x.dataset, x.kind, x.files, size(x.bytes)] for x in status.leftovers],
    )
    return "\n".join(out)


def table(title: str, header: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return [f"\n{title}: none"]
    cells = [header] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return [f"\n{title}:", *(f"  {line}" for line in lines)]
