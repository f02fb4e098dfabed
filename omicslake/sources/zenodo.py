"""Zenodo records (InvenioRDM REST API): record metadata, checksummed files, tabular files as tables.

Config (one entry of `sources.zenodo.records`): id (a record) or concept (always its latest
version), files (globs over the record's file keys), tables (file glob -> table name). Each entry
is one dataset writing `zenodo.records`, `zenodo.files` and one `zenodo.<table>` per file group.
"""

from __future__ import annotations

import json
from pathlib import Path

from omicslake import download
from omicslake.download import DownloadSettings, NotFound, parse_checksum
from omicslake.errors import ConfigError, DatasetError
from omicslake.manifest import Receipt, Upstream
from omicslake.sources.base import Dataset, Plan, unchanged
from omicslake.sources.files import file_tables, files_table, matches, tabular
from omicslake.urls import check_url

RESERVED = {"records", "files"}


def _records_schema():
    import pyarrow as pa

    return pa.schema(
        [(name, pa.string()) for name in ("record_id", "concept_id", "doi", "concept_doi", "title", "version")]
        + [(name, pa.string()) for name in ("publication_date", "license", "creators", "created", "modified")]
    )


def datasets(block: dict) -> dict[str, dict]:
    """One dataset per record entry: `record_<id>` or `concept_<concept>`, unless named."""
    check_url("sources.zenodo.api_url", block["api_url"])
    out = {}
    for i, record in enumerate(block.get("records") or []):
        name = record.get("name") or (f"record_{record['id']}" if record.get("id") else f"concept_{record['concept']}")
        if name in out:
            raise ConfigError(
                f"config key sources.zenodo.records[{i}]: {name!r} is listed twice",
                "list it once, or set another `name`",
            )
        for pattern, table in (record.get("tables") or {}).items():
            if table in RESERVED:
                raise ConfigError(
                    f"config key sources.zenodo.records[{i}].tables.{pattern}: {table!r} is reserved",
                    "choose another table name",
                )
        out[name] = {"api_url": block["api_url"].rstrip("/"), **record}
    return out


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    """The record's version and its selected files (size, md5): a new version is a change."""
    record = fetch_record(str(dataset), entry, settings)
    return [record_upstream(record)] + [file_upstream(record, f) for f in selected(record, entry)]


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    """Fetch the record's selected files (md5 checked); None when the record is the last load's."""
    import dlt

    name = str(dataset)
    record = fetch_record(name, entry, settings)
    files = selected(record, entry)
    upstream = [record_upstream(record)] + [file_upstream(record, f) for f in files]
    if unchanged(previous.upstream if previous else None, upstream):
        return None
    fetched = {  # one folder per file: Zenodo's content URLs all end in /content
        f["key"]: download.fetch(
            name, file_upstream(record, f), workdir / "download" / str(i), settings, f.get("checksum")
        )
        for i, f in enumerate(files)
    }

    contents = unpacked(name, fetched)
    tables = entry.get("tables") or {}
    loaded = {outer for key, (outer, _) in contents.items() if tabular(key, tables)}

    def rows():
        import pyarrow as pa

        records = _records_schema()  # every column, even when a record leaves it empty
        yield dlt.mark.with_table_name(pa.Table.from_pylist([record_row(record)], records), "records")
        listed = [file_row(name, f, f["key"] in loaded) for f in record.get("files", [])]
        version = (record.get("metadata") or {}).get("version")
        yield dlt.mark.with_table_name(files_table(str(record["id"]), version, listed), "files")
        paths = {key: path for key, (_, path) in contents.items()}
        for table, arrow in file_tables(name, paths, tables, {"record_id": str(record["id"])}, ""):
            yield dlt.mark.with_table_name(arrow, table)

    return Plan(upstream, dlt.resource(rows(), name="zenodo"))  # as the record describes them (md5 checked)


def unpacked(dataset: str, fetched: dict) -> dict[str, tuple[str, Path]]:
    """{file key: (record file key, path)} of the files fetched, a zip standing for its members
    `<key>/<member>` (unpacked safely: a hostile member refuses the record)."""
    from omicslake.archives import unpack

    out = {}
    for key, got in fetched.items():
        if key.lower().endswith(".zip"):
            folder = got.path.parent / "unzipped"
            try:
                members = unpack(dataset, got.path, folder)
            except DatasetError as e:  # named by its key: the downloaded file is called `content`
                raise DatasetError(dataset, e.cause, key, fix=e.fix) from None
            out.update({f"{key}/{m.relative_to(folder).as_posix()}": (key, m) for m in members})
        else:
            out[key] = (key, got.path)
    return out


def fetch_record(dataset: str, entry: dict, settings: DownloadSettings) -> dict:
    """The record's JSON: `/records/{id}`, or the concept's latest version."""
    from omicslake.download.http import failed, get, session

    api = entry["api_url"]
    url = f"{api}/records/{entry['id']}" if entry.get("id") else f"{api}/records/{entry['concept']}/versions/latest"
    with get(dataset, url, session(url, settings), {"Accept": "application/json"}, settings) as response:
        if response.status_code in (404, 410):
            what = f"record {entry['id']}" if entry.get("id") else f"concept {entry['concept']}"
            raise NotFound(
                dataset,
                f"Zenodo has no {what} (HTTP {response.status_code})",
                url,
                fix="check the id (or concept) in sources.zenodo.records: a typo, or a restricted record?",
            )
        if response.status_code != 200:
            raise failed(dataset, url, response)
        try:
            return response.json()
        except ValueError as e:
            raise DatasetError(
                dataset, f"the record is not JSON: {e}", url, fix="check api_url in the config"
            ) from None


def selected(record: dict, entry: dict) -> list[dict]:
    """The record's files whose keys match the entry's globs, by key."""
    globs = entry.get("files") or ["*"]
    return sorted(
        (f for f in record.get("files", []) if matches(f["key"], globs)),
        key=lambda f: f["key"],
    )


def modified(record: dict) -> str | None:
    """When the record last changed: `modified` (InvenioRDM), or `updated` (the legacy records API)."""
    return record.get("modified") or record.get("updated")


def record_upstream(record: dict) -> Upstream:
    links = record.get("links", {})
    return Upstream(links.get("self") or str(record["id"]), version=f"{record['id']}@{modified(record)}")


def file_upstream(record: dict, file: dict) -> Upstream:
    links = file.get("links", {})
    url = links.get("content") or links["self"]
    return Upstream(url, checksum=file.get("checksum"), size=file.get("size"), version=str(record["id"]))


def record_row(record: dict) -> dict:
    meta = record.get("metadata", {})
    return {
        "record_id": str(record["id"]),
        "concept_id": str(record.get("conceptrecid") or ""),
        "doi": record.get("doi"),
        "concept_doi": record.get("conceptdoi"),
        "title": meta.get("title"),
        "version": meta.get("version"),
        "publication_date": meta.get("publication_date"),
        "license": (meta.get("license") or {}).get("id"),
        "creators": json.dumps(meta.get("creators", [])),
        "created": record.get("created"),
        "modified": modified(record),
    }


def file_row(dataset: str, file: dict, loaded: bool) -> dict:
    """A row of `zenodo.files`: the checksum as `md5:<hex>` (the legacy API writes bare hex; one
    that cannot be read is NULL here, and refuses the load only of a file that is fetched)."""
    links = file.get("links") or {}
    url = links.get("content") or links.get("self")
    try:
        checksum = parse_checksum(dataset, url, file["checksum"]) if file.get("checksum") else None
    except DatasetError:
        checksum = None
    return {
        "key": file["key"],
        "size": file.get("size"),
        "checksum": checksum,
        "url": url,
        "loaded": loaded,
    }
