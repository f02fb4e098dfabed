"""NCBI GEO over FTP (or a file:// mirror): series, curated datasets (GDS), platform annotations.

Config (`sources.geo`): base_url, series [GSE...], datasets [GDS...], platforms [GPL...],
supplementary (none | list | load). Each accession is one dataset (one job, one load) writing into the
shared tables of schema `geo`:

    series(series_id, title, summary, ..., platform_ids, sample_ids)
    samples(series_id, sample_id, title, source_name, organism, platform_id, ...)
    sample_characteristics(series_id, sample_id, channel, key, value)
    expression(series_id, dataset_id, platform_id, sample_id, probe_id, value)   long format
    supplementary_files(series_id, sample_id, url, file_name, size)
    supplementary_values(series_id, file_name, feature_id, column_name, value)   with `load`
    datasets(dataset_id, ...), dataset_subsets(dataset_id, subset_id, type, description, sample_id)
    platform_probes(platform_id, probe_id, ...annotation columns)
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dlt
import numpy as np
import pyarrow as pa

from omicslake import soft
from omicslake.config import ConfigError
from omicslake.download import DownloadSettings, NotFound, RemoteFile, fetch_remote, list_dir
from omicslake.errors import DatasetError, first_line
from omicslake.formats import infer_format, read_batches
from omicslake.ingest import Plan
from omicslake.manifest import Receipt, Upstream

KINDS = {"series": "GSE", "datasets": "GDS", "platforms": "GPL"}
TEXT, TEXTS, DATE, INT = pa.string(), pa.list_(pa.string()), pa.date32(), pa.int64()
SCHEMAS = {
    "series": pa.schema(
        [
            ("series_id", TEXT),
            ("title", TEXT),
            ("summary", TEXT),
            ("overall_design", TEXT),
            ("type", TEXT),
            ("status", TEXT),
            ("submission_date", DATE),
            ("last_update_date", DATE),
            ("pubmed_ids", TEXTS),
            ("platform_ids", TEXTS),
            ("sample_ids", TEXTS),
            ("contributors", TEXTS),
            ("contact_name", TEXT),
            ("contact_institute", TEXT),
            ("contact_country", TEXT),
            ("relations", TEXTS),
            ("attributes", TEXT),
        ]
    ),
    "samples": pa.schema(
        [
            ("series_id", TEXT),
            ("sample_id", TEXT),
            ("title", TEXT),
            ("source_name", TEXT),
            ("organism", TEXT),
            ("platform_id", TEXT),
            ("molecule", TEXT),
            ("type", TEXT),
            ("description", TEXT),
            ("channel_count", INT),
            ("data_row_count", INT),
            ("submission_date", DATE),
            ("last_update_date", DATE),
            ("attributes", TEXT),
        ]
    ),
    "sample_characteristics": pa.schema(
        [
            ("series_id", TEXT),
            ("sample_id", TEXT),
            ("channel", INT),
            ("key", TEXT),
            ("value", TEXT),
        ]
    ),
    "supplementary_files": pa.schema(
        [
            ("series_id", TEXT),
            ("sample_id", TEXT),
            ("url", TEXT),
            ("file_name", TEXT),
            ("size", INT),
        ]
    ),
    "datasets": pa.schema(
        [
            ("dataset_id", TEXT),
            ("title", TEXT),
            ("description", TEXT),
            ("platform_id", TEXT),
            ("series_id", TEXT),
            ("value_type", TEXT),
            ("sample_organism", TEXT),
            ("sample_type", TEXT),
            ("sample_count", INT),
            ("update_date", DATE),
            ("pubmed_ids", TEXTS),
            ("attributes", TEXT),
        ]
    ),
    "dataset_subsets": pa.schema(
        [
            ("dataset_id", TEXT),
            ("subset_id", TEXT),
            ("type", TEXT),
            ("description", TEXT),
            ("sample_id", TEXT),
        ]
    ),
}
CODED = pa.dictionary(pa.int32(), pa.string())
SUPPLEMENTARY_VALUES = pa.schema(
    [
        ("series_id", CODED),
        ("file_name", CODED),
        ("feature_id", CODED),
        ("column_name", CODED),
        ("value", pa.float64()),
    ]
)
EXPRESSION = pa.schema(
    [
        ("series_id", CODED),
        ("dataset_id", CODED),
        ("platform_id", CODED),
        ("sample_id", CODED),
        ("probe_id", CODED),
        ("value", pa.float64()),
    ]
)


def datasets(block: dict) -> dict[str, dict]:
    """One dataset per accession; the accession must match its list (GSE in series, ...)."""
    out = {}
    for kind, prefix in KINDS.items():
        for i, accession in enumerate(block.get(kind) or []):
            if not re.fullmatch(prefix + r"\d+", accession):
                raise ConfigError(f"config key sources.geo.{kind}[{i}]: {accession!r} is not a {prefix} accession")
            if accession in out:
                raise ConfigError(f"config key sources.geo.{kind}[{i}]: {accession} is listed twice")
            out[accession] = {
                "accession": accession,
                "kind": kind,
                "base_url": block["base_url"],
                "supplementary": block.get("supplementary", "list"),
            }
    return out


def folder_url(base_url: str, accession: str, sub: str) -> str:
    """GEO's FTP layout: GSE105845 -> series/GSE105nnn/GSE105845/<sub>/ (GSE781 -> GSEnnn)."""
    prefix, number = accession[:3], accession[3:]
    group = f"{prefix}{number[:-3]}nnn"
    top = {"GSE": "series", "GDS": "datasets", "GPL": "platforms"}[prefix]
    return f"{base_url.rstrip('/')}/{top}/{group}/{accession}/{sub}/"


def plan(name: str, cfg: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings) -> Plan | None:
    """List the accession's files; None when sizes and dates equal the last load's, else fetch."""
    dataset, accession, kind = f"geo.{name}", cfg["accession"], cfg["kind"]
    data, tables, listed = remote_files(dataset, cfg, settings)
    known = {(u.url, u.size, u.last_modified) for u in previous.upstream} if previous else None
    if known == {(f.url, f.size, f.modified) for f in data + listed}:
        return None
    fetched = [fetch_remote(dataset, f, workdir / "download", settings) for f in data + tables]
    loaded = {f.url for f in tables}
    upstream = [f.upstream for f in fetched]
    upstream += [Upstream(f.url, None, f.size, None, f.modified) for f in listed if f.url not in loaded]
    files = [(f.upstream.url, f.path) for f in fetched]
    listing = [{"url": f.url, "size": f.size} for f in listed]
    source = geo_source(dataset, accession, kind, files[: len(data)], files[len(data) :], listing)
    return Plan(upstream, source)


def remote_files(
    dataset: str, cfg: dict, settings: DownloadSettings
) -> tuple[list[RemoteFile], list[RemoteFile], list[RemoteFile]]:
    """(GEO files to parse, supplementary tables to load, supplementary files listed) of an accession."""
    base, accession, kind = cfg["base_url"], cfg["accession"], cfg["kind"]
    if kind == "datasets":
        wanted = [
            f
            for f in list_dir(dataset, folder_url(base, accession, "soft"), settings)
            if Path(f.url).name == f"{accession}.soft.gz"
        ]
        return require(dataset, accession, wanted, folder_url(base, accession, "soft")), [], []
    if kind == "platforms":
        wanted = [
            f
            for f in list_dir(dataset, folder_url(base, accession, "annot"), settings)
            if Path(f.url).name == f"{accession}.annot.gz"
        ]
        return require(dataset, accession, wanted, folder_url(base, accession, "annot")), [], []
    try:
        matrices = [
            f
            for f in list_dir(dataset, folder_url(base, accession, "matrix"), settings)
            if f.url.endswith("_series_matrix.txt.gz")
        ]
    except NotFound:
        matrices = []  # some series have only the family SOFT
    if not matrices:
        family = [
            f
            for f in list_dir(dataset, folder_url(base, accession, "soft"), settings)
            if Path(f.url).name == f"{accession}_family.soft.gz"
        ]
        matrices = require(dataset, accession, family, folder_url(base, accession, "soft"))
    listed = []
    if cfg["supplementary"] != "none":
        try:
            listed = list_dir(dataset, folder_url(base, accession, "suppl"), settings)
        except NotFound:
            listed = []  # no supplementary folder
    tables = [f for f in listed if cfg["supplementary"] == "load" and is_table(Path(f.url).name)]
    return matrices, tables, listed


def is_table(name: str) -> bool:
    """A supplementary file worth loading: a delimited text table (filelist.txt is GEO's index)."""
    return name != "filelist.txt" and infer_format(name) in ("csv", "tsv")


def require(dataset: str, accession: str, files: list[RemoteFile], url: str) -> list[RemoteFile]:
    if not files:
        raise DatasetError(dataset, f"GEO accession {accession} has no such file", url)
    return files


@dlt.source(name="geo")
def geo_source(
    dataset: str,
    accession: str,
    kind: str,
    files: list[tuple[str, Path]],
    supplementary: list[tuple[str, Path]],
    listing: list[dict],
):
    """The tables of one accession, from its downloaded files, as Arrow batches."""

    def tables() -> Iterator:
        if kind == "series":
            yield from parse_series(dataset, accession, files)
            yield from rows_table("supplementary_files", listing_rows(accession, listing))
        for url, path in files if kind != "series" else []:
            with blame(dataset, url):
                yield from (parse_gds if kind == "datasets" else parse_annot)(accession, path)
        for url, path in supplementary:
            yield from parse_supplementary(dataset, accession, url, path)

    return dlt.resource(tables, name="geo", write_disposition="append")


@contextlib.contextmanager
def blame(dataset: str, url: str):
    """Errors while parsing a file become one DatasetError naming it."""
    try:
        yield
    except (pa.ArrowInvalid, ValueError, KeyError, TypeError, OSError, EOFError) as e:
        cause = first_line(e)
        if "conversion error to double" in cause:
            cause += " (a value column holds text: only numeric GEO tables load into geo.expression)"
        raise DatasetError(dataset, f"cannot parse GEO file: {cause}", Path(url).name) from e


# --- series (series matrix or family SOFT) ------------------------------------------------------


def geo_date(text: str | None):
    try:
        return datetime.strptime(text, "%b %d %Y").date() if text else None
    except ValueError:
        return None


def first(attrs: dict, key: str) -> str | None:
    values = attrs.get(key)
    return values[0] if values else None


def joined(attrs: dict, key: str, sep: str = "\n") -> str | None:
    values = [v for v in attrs.get(key, []) if v]
    return sep.join(values) if values else None


def split_ids(attrs: dict, key: str) -> list[str]:
    return [i for v in attrs.get(key, []) for i in re.split(r"[\s,]+", v) if i]


def series_row(attrs: dict) -> dict:
    return {
        "series_id": first(attrs, "geo_accession"),
        "title": first(attrs, "title"),
        "summary": joined(attrs, "summary"),
        "overall_design": joined(attrs, "overall_design"),
        "type": joined(attrs, "type", "; "),
        "status": first(attrs, "status"),
        "submission_date": geo_date(first(attrs, "submission_date")),
        "last_update_date": geo_date(first(attrs, "last_update_date")),
        "pubmed_ids": split_ids(attrs, "pubmed_id"),
        "platform_ids": split_ids(attrs, "platform_id"),
        "sample_ids": split_ids(attrs, "sample_id"),
        "contributors": attrs.get("contributor", []),
        "contact_name": first(attrs, "contact_name"),
        "contact_institute": first(attrs, "contact_institute"),
        "contact_country": first(attrs, "contact_country"),
        "relations": attrs.get("relation", []),
        "attributes": json.dumps(attrs, ensure_ascii=False),
    }


def sample_rows(series_id: str, samples: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(samples, sample_characteristics, supplementary_files) rows."""
    rows, characteristics, files = [], [], []
    for attrs in samples:
        sample_id = first(attrs, "geo_accession")
        rows.append(
            {
                "series_id": series_id,
                "sample_id": sample_id,
                "title": first(attrs, "title"),
                "source_name": first(attrs, "source_name_ch1"),
                "organism": first(attrs, "organism_ch1"),
                "platform_id": first(attrs, "platform_id"),
                "molecule": first(attrs, "molecule_ch1"),
                "type": first(attrs, "type"),
                "description": joined(attrs, "description"),
                "channel_count": int(first(attrs, "channel_count") or 1),
                "data_row_count": int(first(attrs, "data_row_count") or 0),
                "submission_date": geo_date(first(attrs, "submission_date")),
                "last_update_date": geo_date(first(attrs, "last_update_date")),
                "attributes": json.dumps(attrs, ensure_ascii=False),
            }
        )
        for key, values in attrs.items():
            channel = re.fullmatch(r"characteristics_ch(\d+)", key)
            for cell in values if channel else []:
                if cell:
                    name, sep, value = cell.partition(":")
                    characteristics.append(
                        {
                            "series_id": series_id,
                            "sample_id": sample_id,
                            "channel": int(channel[1]),
                            "key": name.strip() if sep else None,
                            "value": value.strip() if sep else cell.strip(),
                        }
                    )
            if key.startswith("supplementary_file"):
                files += [
                    {
                        "series_id": series_id,
                        "sample_id": sample_id,
                        "url": url,
                        "file_name": Path(url).name,
                        "size": None,
                    }
                    for url in values
                    if url and url.upper() != "NONE"
                ]
    return rows, characteristics, files


def listing_rows(series_id: str, listing: list[dict]) -> list[dict]:
    """Rows of the series' supplementary folder listing."""
    return [
        {
            "series_id": series_id,
            "sample_id": None,
            "url": f["url"],
            "file_name": Path(f["url"]).name,
            "size": f["size"],
        }
        for f in listing
    ]


def parse_series(dataset: str, accession: str, files: list[tuple[str, Path]]) -> Iterator:
    """Tables of a series: from its series matrices (one per platform), else its family SOFT."""
    if len(files) == 1 and Path(files[0][0]).name.endswith("_family.soft.gz"):
        with blame(dataset, files[0][0]):
            yield from parse_family_soft(accession, files[0][1])
        return
    matrices = []
    for url, path in files:
        with blame(dataset, url):
            matrix = soft.read_series_matrix(path)
            if (first(matrix.series, "geo_accession") or accession) != accession:
                raise ValueError(f"file is series {first(matrix.series, 'geo_accession')}, not {accession}")
            matrices.append((url, matrix))
    merged = dict(matrices[0][1].series)  # each platform's matrix lists only its own samples
    for key in ("sample_id", "platform_id"):
        merged[key] = list(dict.fromkeys(i for _, m in matrices for i in split_ids(m.series, key)))
    yield from rows_table("series", [series_row(merged)])
    for url, matrix in matrices:
        with blame(dataset, url):
            yield from rows_as_tables(*sample_rows(accession, matrix.samples))
            platform = first(matrix.samples[0], "platform_id") if matrix.samples else None
            reader = soft.read_table(matrix.table, {"ID_REF": pa.string()}, quoted=True, default_type=pa.float64())
            for batch in reader:
                yield dlt.mark.with_table_name(long_format(batch, accession, None, platform), "expression")


def parse_family_soft(accession: str, path: Path) -> Iterator:
    samples = []
    for entity in soft.read_soft(path):
        attrs = {re.sub(r"^(series|sample)_", "", k): v for k, v in entity.attrs.items()}
        if entity.kind == "SERIES":
            yield from rows_table("series", [series_row(attrs)])
        elif entity.kind == "SAMPLE":
            samples.append(attrs)
            if entity.table is not None:
                reader = soft.read_table(entity.table, {"ID_REF": pa.string(), "VALUE": pa.float64()})
                for batch in reader:
                    values = batch.select(["ID_REF", "VALUE"]).rename_columns(["ID_REF", entity.id])
                    platform = first(attrs, "platform_id")
                    yield dlt.mark.with_table_name(long_format(values, accession, None, platform), "expression")
    yield from rows_as_tables(*sample_rows(accession, samples))


def rows_as_tables(samples: list[dict], characteristics: list[dict], files: list[dict]) -> Iterator:
    yield from rows_table("samples", samples)
    yield from rows_table("sample_characteristics", characteristics)
    yield from rows_table("supplementary_files", files)


def rows_table(name: str, rows: list[dict]) -> Iterator:
    """Rows as an Arrow table of the lake table `name`, with its fixed column types; none if empty."""
    if rows:
        yield dlt.mark.with_table_name(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), name)


def coded(indices: np.ndarray, values: list | pa.Array) -> pa.DictionaryArray:
    """Dictionary-encoded strings: Parquet stores them so anyway, and repeats cost an int each."""
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values, pa.string()))


def constant(value: str | None, rows: int) -> pa.Array:
    return pa.nulls(rows, CODED) if value is None else coded(np.zeros(rows, np.int32), [value])


def melt(batch: pa.RecordBatch, columns: list[str]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Wide -> long: (row id from the first column, column name, value) for each of `columns`."""
    n = batch.num_rows
    ids = coded(np.tile(np.arange(n, dtype=np.int32), len(columns)), batch.column(0).cast(pa.string()))
    names = coded(np.repeat(np.arange(len(columns), dtype=np.int32), n), columns)
    values = [batch.column(c).cast(pa.float64()) for c in columns]
    return ids, names, pa.concat_arrays(values) if values else pa.array([], pa.float64())


def long_format(
    batch: pa.RecordBatch, series_id: str | None, dataset_id: str | None, platform_id: str | None
) -> pa.Table:
    """probe x sample values (first column: probe ids) -> one row per (sample, probe)."""
    probes, samples, values = melt(batch, [n for n in batch.schema.names[1:] if n.startswith("GSM")])
    rows = len(values)
    ids = [constant(series_id, rows), constant(dataset_id, rows), constant(platform_id, rows)]
    return pa.table([*ids, samples, probes, values], schema=EXPRESSION)


def parse_supplementary(dataset: str, accession: str, url: str, path: Path) -> Iterator:
    """A supplementary table (e.g. a counts matrix): its numeric columns, long, keyed by the first column."""
    name = Path(url).name
    for batch in read_batches(dataset, path, infer_format(name)):
        numeric = [f.name for f in batch.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
        features, columns, values = melt(batch, [c for c in numeric if c != batch.schema.names[0]])
        rows = len(values)
        yield dlt.mark.with_table_name(
            pa.table(
                [constant(accession, rows), constant(name, rows), features, columns, values],
                schema=SUPPLEMENTARY_VALUES,
            ),
            "supplementary_values",
        )


# --- GDS ----------------------------------------------------------------------------------------


def parse_gds(accession: str, path: Path) -> Iterator:
    info, subsets = {}, []
    for entity in soft.read_soft(path):
        attrs = {re.sub(r"^(dataset|subset)_", "", k): v for k, v in entity.attrs.items()}
        if entity.kind == "DATASET" and entity.table is None:
            info = attrs
            yield from rows_table(
                "datasets",
                [
                    {
                        "dataset_id": entity.id,
                        "title": first(attrs, "title"),
                        "description": joined(attrs, "description"),
                        "platform_id": first(attrs, "platform"),
                        "series_id": first(attrs, "reference_series"),
                        "value_type": first(attrs, "value_type"),
                        "sample_organism": first(attrs, "sample_organism"),
                        "sample_type": first(attrs, "sample_type"),
                        "sample_count": int(first(attrs, "sample_count") or 0),
                        "update_date": geo_date(first(attrs, "update_date")),
                        "pubmed_ids": split_ids(attrs, "pubmed_id"),
                        "attributes": json.dumps(attrs, ensure_ascii=False),
                    }
                ],
            )
        elif entity.kind == "SUBSET":
            subsets += [
                {
                    "dataset_id": first(attrs, "dataset_id") or accession,
                    "subset_id": entity.id,
                    "type": first(attrs, "type"),
                    "description": first(attrs, "description"),
                    "sample_id": s,
                }
                for s in split_ids(attrs, "sample_id")
            ]
        elif entity.kind == "DATASET" and entity.table is not None:
            if subsets:
                yield from rows_table("dataset_subsets", subsets)
                subsets = []
            reader = soft.read_table(
                entity.table, {"ID_REF": pa.string(), "IDENTIFIER": pa.string()}, default_type=pa.float64()
            )
            for batch in reader:
                yield dlt.mark.with_table_name(
                    long_format(batch, first(info, "reference_series"), entity.id, first(info, "platform")),
                    "expression",
                )


# --- platform annotation ------------------------------------------------------------------------


def parse_annot(accession: str, path: Path) -> Iterator:
    for entity in soft.read_soft(path):
        if entity.kind == "PLATFORM" and entity.table is not None:
            for batch in soft.read_table(entity.table, default_type=pa.string()):
                names = ["probe_id" if n == "ID" else n for n in batch.schema.names]
                table = pa.Table.from_batches([batch]).rename_columns(names)
                platform = pa.repeat(pa.scalar(accession, pa.string()), len(table))
                yield dlt.mark.with_table_name(table.add_column(0, "platform_id", platform), "platform_probes")
