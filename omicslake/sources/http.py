"""Plain HTTP(S) and `file://` tables: one URL becomes one lake table `http.<name>`.

Config (one entry of `sources.http`): name, url, format (inferred from the URL when absent),
sha256 (optional, verified), null_values (optional extra NULL markers, e.g. "-").
"""

from __future__ import annotations

from pathlib import Path

import dlt

from omicslake.config import ConfigError
from omicslake.download import DownloadSettings, fetch
from omicslake.errors import DatasetError
from omicslake.formats import infer_format, read_batches
from omicslake.ingest import Plan
from omicslake.manifest import Receipt


def datasets(block: list[dict]) -> dict[str, dict]:
    """`sources.http` entries by name; a name used twice is an error (it is the table name)."""
    seen: dict[str, int] = {}
    for i, entry in enumerate(block):
        if entry["name"] in seen:
            raise ConfigError(
                f"config key sources.http[{i}].name: duplicate table name {entry['name']!r} "
                f"(also sources.http[{seen[entry['name']]}].name); each becomes table http.{entry['name']}"
            )
        seen[entry["name"]] = i
    return {entry["name"]: entry for entry in block}


@dlt.source(name="http")
def http_source(dataset: str, name: str, path: Path, fmt: str, null_values: list[str] | None):
    """One resource, `name`: the file's rows as Arrow batches."""

    @dlt.resource(name=name, write_disposition="append")
    def table():
        yield from read_batches(dataset, path, fmt, null_values)

    return table


def plan(name: str, cfg: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings) -> Plan | None:
    dataset = f"http.{name}"
    url = cfg["url"]
    fmt = cfg.get("format") or infer_format(url)
    if not fmt:
        raise DatasetError(dataset, "cannot infer the format from the URL: set `format`", url)
    fetched = fetch(
        dataset,
        url,
        workdir / "download",
        cfg.get("sha256"),
        previous.upstream[0] if previous and previous.upstream else None,
        settings,
    )
    if fetched.path is None:
        return None
    source = http_source(dataset, name, fetched.path, fmt, cfg.get("null_values"))
    return Plan([fetched.upstream], source)
