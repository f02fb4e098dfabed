"""The source registry: each source's module and what its jobs need.

Rules (`rules/ingest.smk`), the datasets a config asks for (`datasets`) and the download
resources derive from it. A new source is its module, one line here, a block in
`config/schema.yaml`, its tests and its page `docs/sources/<name>.md` (docs/adding-a-source.md).
"""

from __future__ import annotations

import dataclasses

from omicslake import config as workflow_config
from omicslake.sources import cellxgene, geo, http, kaggle, s3, zenodo
from omicslake.sources.base import ChunkedSource, Source


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    name: str
    module: Source | ChunkedSource
    mem_mb: int  # first attempt of an ingest job; grows with each attempt
    runtime: int  # minutes, first attempt
    downloads: int  # parallel downloads from this upstream (resource `downloads_<name>`), and the probe's pool
    conda: str = "envs/omicslake.yaml"
    tables_version: int | None = None  # bump when the source's lake tables change shape: every dataset reloads
    tuning: tuple[str, ...] = ()  # config keys that change how a dataset is fetched, not what: no reload

    @property
    def chunked(self) -> bool:
        """Its datasets are split into chunks, one ingest job each (`ChunkedSource`)."""
        return hasattr(self.module, "chunks")

    def identity(self, entry: dict) -> dict:
        """A dataset's config entry as its loads record it (part of each load's fingerprint): keys
        left at None and tuning keys dropped, plus the version of the source's tables."""
        settled = {key: value for key, value in entry.items() if value is not None and key not in self.tuning}
        return settled if self.tables_version is None else {**settled, "tables_version": self.tables_version}

    def resolved(self, entry: dict) -> dict:
        """The entry as the source's functions get it: its identity plus its tuning keys."""
        return {**self.identity(entry), **{key: entry[key] for key in self.tuning if entry.get(key) is not None}}


SOURCES = {
    spec.name: spec
    for spec in [
        SourceSpec("http", http, mem_mb=2000, runtime=60, downloads=4),
        SourceSpec("geo", geo, mem_mb=4000, runtime=120, downloads=2, tables_version=2),  # 2: dataset_expression
        # tables_version 2: one `files` shape (record_id, record_version, key, size, checksum, url, loaded)
        # and `file_key` in every data table
        SourceSpec("zenodo", zenodo, mem_mb=2000, runtime=60, downloads=2, tables_version=2),  # guests: 60 req/min
        SourceSpec("kaggle", kaggle, mem_mb=2000, runtime=60, downloads=2, tables_version=2),
        SourceSpec("s3", s3, mem_mb=2000, runtime=60, downloads=4),
        SourceSpec(
            "cellxgene", cellxgene, 4000, 120, 4, "envs/cellxgene.yaml", tuning=("read_buffer_mb", "tiledb_config")
        ),
    ]
}


def entries(config: dict, source: str) -> dict[str, dict]:
    """A source's dataset entries by name, checked by the source (ConfigError naming the key)."""
    block = (config.get("sources") or {}).get(source)
    return SOURCES[source].module.datasets(block) if block is not None else {}


def datasets(config: dict) -> list[tuple[str, str]]:
    """All (source, name) pairs the config asks for."""
    return [(source, name) for source in config.get("sources") or {} for name in entries(config, source)]


def dataset_config(config: dict, source: str, name: str) -> dict:
    return entries(config, source)[name]


def s3_locations(config: dict) -> list[dict]:
    """The S3 locations the lake reads (a DuckDB secret each): its data path when that is on S3, and
    those its sources declare (`locations(block)`: objects registered in place)."""
    own = workflow_config.lake_location(config)
    declared = [
        location
        for source, block in (config.get("sources") or {}).items()
        if hasattr(SOURCES[source].module, "locations")
        for location in SOURCES[source].module.locations(block)
    ]
    return own + declared
