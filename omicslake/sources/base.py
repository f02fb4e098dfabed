"""The contract every source keeps, as code.

A source is a module (or package) under `omicslake.sources` with three functions:

    datasets(block) -> {name: entry}   its datasets from its block of `sources:` in the config
                                       (light: the DAG is built from this, without dlt or pyarrow)
    probe(dataset, entry, previous, settings) -> [Upstream]
                                       what its upstream files are now (conditional GET, FTP
                                       listing, API version), without downloading them
    plan(dataset, entry, workdir, previous, settings) -> Plan | None
                                       fetch what changed since the receipt `previous` (None: nothing)
                                       and return the dlt source that yields its tables as Arrow

A chunked source (large pulls split across jobs) has, instead of `plan`:

    chunks(dataset, entry, settings) -> [chunk]
                                       the dataset's parts, deterministic for an upstream version
                                       (JSON-able dicts): one ingest job each, on a cluster node
    plan_chunk(dataset, entry, chunk, workdir, settings) -> Plan
                                       the dlt source of one chunk; all chunks of a dataset
                                       register together, in one snapshot

Heavy libraries (dlt, pyarrow, ...) are imported inside `plan()` / `chunks()` / `plan_chunk()`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from omicslake.download import DownloadSettings, same_version
from omicslake.manifest import Receipt, StagedFile, Upstream


@dataclasses.dataclass(frozen=True)
class Dataset:
    source: str
    name: str

    def __str__(self) -> str:
        return f"{self.source}.{self.name}"


@dataclasses.dataclass
class Plan:
    upstream: list[Upstream]  # every upstream file the load stands for (fetched or only listed)
    # a dlt source or resource yielding Arrow tables (marked with their table names); or
    # {upstream url: resource}: each upstream file's rows in files of their own, so a later load
    # can keep them (`kept`) while it replaces others
    source: Any
    # {table: {column: value}}: columns with one value in all the load's rows of a table, kept out
    # of its files and registered as hive partitions (a folder <column>=<value>/ in the lake)
    partitions: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # Parquet files registered where they are (objects in a bucket): described, never staged or moved
    in_place: list[StagedFile] = dataclasses.field(default_factory=list)
    # upstream urls unchanged since the last load: their lake files stay, only the others are replaced
    kept: list[str] = dataclasses.field(default_factory=list)


class Source(Protocol):
    def datasets(self, block: Any) -> dict[str, dict]: ...

    def probe(
        self, dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings
    ) -> list[Upstream]: ...

    def plan(
        self, dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
    ) -> Plan | None: ...


class ChunkedSource(Protocol):
    def datasets(self, block: Any) -> dict[str, dict]: ...

    def probe(
        self, dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings
    ) -> list[Upstream]: ...

    def chunks(self, dataset: Dataset, entry: dict, settings: DownloadSettings) -> list[dict]: ...

    def plan_chunk(
        self, dataset: Dataset, entry: dict, chunk: dict, workdir: Path, settings: DownloadSettings
    ) -> Plan: ...


def unchanged(previous: list[Upstream] | None, current: list[Upstream]) -> bool:
    """Is `current` the same set of files, each in the same version, as `previous`?"""
    if previous is None:
        return False
    before = {u.url: u for u in previous}
    return before.keys() == {u.url for u in current} and all(same_version(before[u.url], u) for u in current)
