"""The staging contract between an ingest job and registration: `manifest.json`.

A manifest describes one load of one dataset: the Parquet files dlt wrote (table, rows, bytes,
schema, dlt load id), the upstream files they came from (URL, checksum, ETag/Last-Modified or
version, fetch time) and a fingerprint of the upstream content. `status` is "changed" when files
were staged, "unchanged" when the source said nothing changed since the last registered load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from omicslake.errors import RESTAGE, DatasetError

VERSION = 1
JOURNAL = "moving.json"  # registration's journal of the files it moves into the lake (register/move.py)


def write_json(path: str | os.PathLike, data) -> None:
    """Write atomically: a crash never leaves half a manifest, receipt or stamp behind."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_failure(path: str | os.PathLike, dataset: str, line: str) -> None:
    """In place of a manifest: the one line of a dataset's failed ingest, for registration to report."""
    write_json(path, {"version": VERSION, "dataset": dataset, "failed": line})


def failed_ingest(path: str | os.PathLike) -> str | None:
    """The failure `write_failure` left at `path` (a manifest, or no file: None), removed: the next run
    ingests the dataset again, as after a failed job. (Touching its input is not enough: Snakemake
    compares a small input's checksum, not only its time.)"""
    try:
        with open(path) as f:
            line = json.load(f).get("failed")
    except (OSError, ValueError, AttributeError):
        return None  # registration reads it and names what is wrong with it
    if line:
        Path(path).unlink(missing_ok=True)
    return line


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class StagedFile:
    table: str  # lake table, "<schema>.<table>"
    path: str  # absolute path of the Parquet file in staging
    rows: int
    bytes: int
    schema: list[dict]  # [{"name": ..., "type": <arrow type>}]
    load_id: str
    partition: dict[str, str] | None = None  # columns the file's folder holds (hive: <column>=<value>/)
    upstream: str | None = None  # the upstream file its rows came from, when it holds only that one's
    in_place: bool = False  # registered where it is (an object in a bucket): `path` is its URL
    mtime_ns: int | None = None  # a local file's modification time: rewritten since, it is not this file


@dataclasses.dataclass
class Upstream:
    url: str
    checksum: str | None = None  # "sha256:<hex>", or the published "md5:<hex>" it was checked against
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    version: str | None = None
    fetched_at: str | None = None

    def version_key(self) -> tuple:
        """What tells this version of the file from another (not when it was fetched)."""
        return (self.url, self.size, self.etag, self.last_modified, self.version)


@dataclasses.dataclass
class Manifest:
    dataset: str  # "<source>.<name>"
    source: str
    status: str  # "changed" | "unchanged"
    fingerprint: str
    upstream: list[Upstream]
    files: list[StagedFile]
    config: dict  # the dataset's config entry (None values dropped): part of the load's identity
    pipeline: str | None = None
    load_id: str | None = None
    workflow_version: str | None = None
    version: int = VERSION
    kept: list[str] = dataclasses.field(default_factory=list)  # upstream urls whose lake files stay

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Manifest:
        data = json.loads(Path(path).read_text())
        if data.get("version") != VERSION:
            raise DatasetError(
                data.get("dataset", "?"),
                f"unsupported manifest version {data.get('version')}",
                str(path),
                fix=RESTAGE,
            )
        data["upstream"] = [Upstream(**u) for u in data["upstream"]]
        data["files"] = [StagedFile(**f) for f in data["files"]]
        return cls(**data)


def describe_file(
    path: str, table: str, load_id: str, partition: dict[str, str] | None = None, filesystem=None
) -> StagedFile:
    """Describe a Parquet file from its footer (no data read); a URL through `filesystem` (fsspec)."""
    import pyarrow.parquet as pq

    mtime = None
    if filesystem is None:
        stat = os.stat(path)
        meta, size, mtime = pq.read_metadata(path), stat.st_size, stat.st_mtime_ns
    else:
        with filesystem.open(path, "rb") as f:
            meta, size = pq.read_metadata(f), filesystem.size(path)
    schema = [{"name": f.name, "type": str(f.type)} for f in meta.schema.to_arrow_schema()]
    return StagedFile(table, path, meta.num_rows, size, schema, load_id, partition, mtime_ns=mtime)


def check_file(dataset: str, staged: StagedFile, actual_path: str) -> None:
    """The file on disk is the file the manifest describes (bytes, rows, schema, and for a local
    file its modification time: a rewrite of the same size is caught without reading every byte)."""
    if not os.path.exists(actual_path):
        raise DatasetError(dataset, "staged file is missing", staged.path, fix=RESTAGE)
    try:
        actual = describe_file(actual_path, staged.table, staged.load_id)
    except Exception as e:  # a footer damaged on disk
        raise DatasetError(dataset, f"staged file is not readable Parquet: {e}", staged.path, fix=RESTAGE) from None
    for field in ("bytes", "rows", "schema", "mtime_ns"):
        if staged.mtime_ns is None and field == "mtime_ns":
            continue  # a manifest of an older omicslake
        if field == "mtime_ns" and actual.mtime_ns != staged.mtime_ns:
            raise DatasetError(
                dataset, "file was rewritten after its manifest (modification time changed)", staged.path, fix=RESTAGE
            )
        if getattr(actual, field) != getattr(staged, field):
            raise DatasetError(
                dataset,
                f"file does not match its manifest: {field} {getattr(actual, field)!r} != {getattr(staged, field)!r}",
                staged.path,
                fix=RESTAGE,
            )


@dataclasses.dataclass
class Receipt:
    """What registration left in the lake for a dataset; ingest reads it to skip unchanged data."""

    dataset: str
    status: str  # "registered" | "unchanged"
    load_id: str
    snapshot_id: int
    fingerprint: str
    upstream: list[Upstream]
    files: list[str]  # paths relative to the lake's DATA_PATH
    rows: int
    registered_at: str
    config: dict  # the dataset config of that load: a changed config means fetch afresh

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Receipt | None:
        """The receipt at `path`, or None when absent or unreadable (then ingest starts afresh)."""
        try:
            data = json.loads(Path(path).read_text())
            data["upstream"] = [Upstream(**u) for u in data["upstream"]]
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def fingerprint(upstream: list[Upstream], config: dict) -> str:
    """Identity of a load: upstream content checksums plus the dataset config that shaped it."""
    payload = {
        "upstream": sorted(
            u.checksum or f"{u.url}|{u.size}|{u.last_modified}" + (f"|{u.version}" if u.version else "")
            for u in upstream
        ),
        "config": config,
    }
    return "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
