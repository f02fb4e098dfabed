"""Objects in an S3 bucket (any S3-compatible store): one config entry, one lake table `s3.<name>`.

Config (one entry of `sources.s3`): name, bucket_url (s3://bucket/prefix/), file_glob (relative to
the prefix), format (parquet, csv, tsv; else from each key), anonymous, endpoint_url, region,
url_style, register_in_place. The probe lists the prefix (ETag, size, date); a load reads only
the objects that are new or changed since the last one and keeps the lake files of the others.
With `register_in_place`, Parquet objects are registered where they are: nothing downloaded or
copied, the schema read from their footers. Other objects are downloaded (resumably) and staged
as Parquet through dlt, each object into files of its own.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

from omicslake import download
from omicslake.download import DownloadSettings, same_version
from omicslake.errors import ConfigError, DatasetError, first_line
from omicslake.manifest import Receipt, StagedFile, Upstream
from omicslake.sources.base import Dataset, Plan, unchanged
from omicslake.urls import check_url

BUCKET_KEYS = ("endpoint_url", "region", "url_style", "anonymous")
FOOTER_READ = 64 << 10  # bytes read from an object's end: most Parquet footers fit


def datasets(block: list[dict]) -> dict[str, dict]:
    """`sources.s3` entries by name (each is table `s3.<name>`)."""
    out = {}
    for i, entry in enumerate(block):
        if entry["name"] in out:
            raise ConfigError(
                f"config key sources.s3[{i}].name: {entry['name']!r} is listed twice",
                "choose another name",
            )
        if entry.get("endpoint_url"):
            check_url(f"sources.s3[{i}].endpoint_url", entry["endpoint_url"])
        out[entry["name"]] = entry
    return out


def location(entry: dict) -> dict:
    """What DuckDB and s3fs need to reach the entry's bucket (no credentials: those come from boto)."""
    return {"scope": entry["bucket_url"], **{key: entry[key] for key in BUCKET_KEYS if entry.get(key) is not None}}


def locations(block: list[dict]) -> list[dict]:
    """The buckets the lake reads from: those whose objects are registered in place."""
    return [location(entry) for entry in block or [] if entry.get("register_in_place")]


def objects(dataset: Dataset, entry: dict, settings: DownloadSettings) -> list[Upstream]:
    """The objects under the prefix that match `file_glob`, with ETag, size and date."""
    prefix = entry["bucket_url"].rstrip("/") + "/"
    glob = entry.get("file_glob") or "**/*"
    listed = download.listing(str(dataset), prefix, bucket(entry, settings))
    matched = [u for u in listed if matches(u.url.removeprefix(prefix), glob)]
    if not matched:
        raise DatasetError(
            str(dataset),
            f"no object under the prefix matches {glob!r}",
            prefix,
            fix="check bucket_url and file_glob in the config",
        )
    return matched


def matches(key: str, glob: str) -> bool:
    """fnmatch, where `**/` also matches no folder at all (`**/*.csv` matches `a.csv`)."""
    return fnmatch.fnmatchcase(key, glob) or (glob.startswith("**/") and fnmatch.fnmatchcase(key, glob[3:]))


def bucket(entry: dict, settings: DownloadSettings) -> DownloadSettings:
    return dataclasses.replace(settings, s3=location(entry))


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    return objects(dataset, entry, settings)


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    """New and changed objects: registered in place or staged; unchanged ones keep their files."""
    import dlt

    from omicslake.formats import infer_format, read_ahead, read_batches

    name, current = str(dataset), objects(dataset, entry, settings)
    if unchanged(previous.upstream if previous else None, current):
        return None
    before = {u.url: u for u in previous.upstream} if previous else {}
    now = {u.url: u for u in current}
    for url, old in sorted(before.items()):  # objects registered in place must never change
        in_place = entry.get("register_in_place") and (entry.get("format") or infer_format(url)) == "parquet"
        if in_place and not same_version(old, now.get(url, Upstream(url))):
            raise replaced(name, url)
    kept = [u.url for u in current if u.url in before and same_version(before[u.url], u)]
    changed = [u for u in current if u.url not in kept]
    formats = {u.url: entry.get("format") or object_format(name, u.url) for u in changed}
    footers = [u for u in changed if formats[u.url] == "parquet" and entry.get("register_in_place")]
    in_place = described(name, footers, f"s3.{dataset.name}", bucket(entry, settings))
    staged, registered = {}, {u.url for u in footers}
    for i, obj in enumerate(u for u in changed if u.url not in registered):
        fmt = formats[obj.url]
        got = download.fetch(name, obj, workdir / "download" / str(i), bucket(entry, settings))
        rows = read_ahead(read_batches(name, got.path, fmt))  # a generator: read when dlt extracts it
        staged[obj.url] = dlt.resource(rows, name=dataset.name, write_disposition="append")
    return Plan(current, staged, in_place=in_place, kept=kept)


def replaced(dataset: str, url: str) -> DatasetError:
    return DatasetError(
        dataset,
        "an object registered in place was replaced or deleted upstream: DuckLake reads a registered file "
        "by its recorded size and row positions, so the table is wrong until the object is restored",
        url,
        fix="restore the object; register in place only objects that never change (new data under new keys), "
        "or set `register_in_place: false` to stage copies",
    )


def object_format(dataset: str, url: str) -> str:
    from omicslake.formats import infer_format

    fmt = infer_format(url)
    if fmt not in ("parquet", "csv", "tsv"):
        raise DatasetError(
            dataset, "not a Parquet, CSV or TSV object", url, fix="set `format`, or narrow `file_glob` in the config"
        )
    return fmt


def described(dataset: str, objects: list[Upstream], table: str, settings: DownloadSettings) -> list[StagedFile]:
    """Parquet objects as registration needs them, from their footers: one ranged GET of each
    object's tail (the listing gave its size), all at once through s3fs's event loop (2.4-2.9 s
    for 1,000 objects where 16 threads of one GET each took 4.1 s), and a second GET only for a
    footer larger than that."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from omicslake.download.s3 import failed, filesystem

    fs = filesystem(settings)
    starts = [max(0, obj.size - FOOTER_READ) for obj in objects]
    tails = fs.cat_ranges([obj.url for obj in objects], starts, [obj.size for obj in objects], on_error="return")
    files = []
    for obj, tail in zip(objects, tails, strict=True):
        try:
            if isinstance(tail, Exception):
                raise tail
            footer = int.from_bytes(tail[-8:-4], "little") + 8 if tail[-4:] == b"PAR1" else 0
            if footer > len(tail):
                tail = fs.cat_file(obj.url, start=max(0, obj.size - footer), end=obj.size)
            meta = pq.read_metadata(pa.BufferReader(tail))
        except pa.ArrowException as e:
            raise DatasetError(
                dataset,
                f"not a readable Parquet file: {first_line(e)}",
                obj.url,
                fix="replace the object, or narrow `file_glob` to skip it",
            ) from None
        except Exception as e:
            raise failed(dataset, obj.url, e) from None
        schema = [{"name": f.name, "type": str(f.type)} for f in meta.schema.to_arrow_schema()]
        files.append(
            StagedFile(table, obj.url, meta.num_rows, obj.size, schema, "in-place", upstream=obj.url, in_place=True)
        )
    return files
