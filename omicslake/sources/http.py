"""Plain HTTP(S) and `file:` tables: one URL becomes one lake table `http.<name>`.

Config (one entry of `sources.http`): name, url, format (inferred from the URL when absent),
sha256 (optional, verified), null_values (optional extra NULL markers, e.g. "-").
"""

from __future__ import annotations

from pathlib import Path

from omicslake import download
from omicslake.download import DownloadSettings
from omicslake.errors import ConfigError, DatasetError
from omicslake.manifest import Receipt, Upstream
from omicslake.sources.base import Dataset, Plan
from omicslake.urls import check_url, public


def datasets(block: list[dict]) -> dict[str, dict]:
    """`sources.http` entries by name; a name used twice is an error (it is the table name)."""
    seen: dict[str, int] = {}
    for i, entry in enumerate(block):
        if entry["name"] in seen:
            raise ConfigError(
                f"config key sources.http[{i}].name: duplicate table name {entry['name']!r} "
                f"(also sources.http[{seen[entry['name']]}].name); each becomes table http.{entry['name']}",
                "give each entry its own name",
            )
        check_url(f"sources.http[{i}].url", entry["url"])
        seen[entry["name"]] = i
    return {entry["name"]: entry for entry in block}


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    return [download.probe(str(dataset), entry["url"], settings, previous[0] if previous else None)]


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    import dlt

    from omicslake.formats import infer_format, read_ahead, read_batches

    url = entry["url"]
    fmt = entry.get("format") or infer_format(url)
    if not fmt:
        raise DatasetError(
            str(dataset),
            "cannot infer the format from the URL",
            public(url),
            fix="set `format` in the entry (csv, tsv, parquet, jsonl, ...)",
        )
    last = previous.upstream[0] if previous and previous.upstream else None
    fetched = download.fetch(str(dataset), url, workdir / "download", settings, entry.get("sha256"), last)
    if fetched.path is None:
        return None

    @dlt.resource(name=dataset.name, write_disposition="append")
    def table():
        """The file's rows as Arrow batches."""
        yield from read_ahead(read_batches(str(dataset), fetched.path, fmt, entry.get("null_values")))

    return Plan([fetched.upstream], table)
