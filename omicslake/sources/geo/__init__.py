"""NCBI GEO over FTP or HTTPS (or a file:// mirror): series, curated datasets (GDS), platform annotations.

Config (`sources.geo`): base_url, series [GSE...], datasets [GDS...], platforms [GPL...],
supplementary (none | list | load). Each accession is one dataset (one job, one load) writing into
the shared tables of schema `geo` (`tables.py`). The package:

    layout.py   where an accession's files are on the FTP server, and which of them to read
    soft.py     readers for GEO's text formats (SOFT, series matrix), streaming into Arrow
    parse.py    an accession's files -> rows of the geo tables (the dlt source)
    tables.py   the tables and their column types
"""

from __future__ import annotations

import re
from pathlib import Path

from omicslake import download
from omicslake.download import DownloadSettings
from omicslake.errors import ConfigError
from omicslake.manifest import Receipt, Upstream
from omicslake.sources.base import Dataset, Plan, unchanged
from omicslake.sources.geo.layout import KINDS, remote_files
from omicslake.urls import check_url


def datasets(block: dict) -> dict[str, dict]:
    """One dataset per accession; the accession must match its list (GSE in series, ...)."""
    out = {}
    check_url("sources.geo.base_url", block.get("base_url", ""))
    for kind, prefix in KINDS.items():
        for i, accession in enumerate(block.get(kind) or []):
            if not re.fullmatch(prefix + r"\d+", accession):
                raise ConfigError(
                    f"config key sources.geo.{kind}[{i}]: {accession!r} is not a {prefix} accession",
                    "list GSE accessions under series, GDS under datasets, GPL under platforms",
                )
            if accession in out:
                raise ConfigError(f"config key sources.geo.{kind}[{i}]: {accession} is listed twice", "list it once")
            out[accession] = {
                "accession": accession,
                "kind": kind,
                "base_url": block["base_url"],
                "supplementary": block.get("supplementary", "list"),
            }
    return out


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    """The accession's folder listings: names, sizes and dates of every file a load reads or lists."""
    data, _, listed = remote_files(str(dataset), entry, settings)
    return data + listed


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    """List the accession's files; None when they are the last load's, else fetch and parse them."""
    from omicslake.sources.geo.parse import geo_source

    data, tables, listed = remote_files(str(dataset), entry, settings)
    if unchanged(previous.upstream if previous else None, data + listed):
        return None
    fetched = [download.fetch(str(dataset), f, workdir / "download", settings) for f in data + tables]
    loaded = {f.url for f in tables}
    upstream = [f.upstream for f in fetched] + [f for f in listed if f.url not in loaded]
    files = [(f.upstream.url, f.path) for f in fetched]
    source = geo_source(str(dataset), entry["accession"], entry["kind"], files[: len(data)], files[len(data) :], listed)
    return Plan(upstream, source)
