"""An accession's downloaded files -> rows of the geo tables, as Arrow tables (the dlt source)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dlt
import pyarrow as pa

from omicslake.errors import DatasetError, first_line
from omicslake.formats import infer_format, read_ahead, read_batches
from omicslake.manifest import Upstream
from omicslake.reshape import constant, melt, tiled
from omicslake.sources.geo import soft
from omicslake.sources.geo.tables import TABLES


@dlt.source(name="geo")
def geo_source(
    dataset: str,
    accession: str,
    kind: str,
    files: list[tuple[str, Path]],
    supplementary: list[tuple[str, Path]],
    listed: list[Upstream],
):
    """The tables of one accession, from its downloaded files, as Arrow tables; every geo table is
    declared (an empty table when the accession has no rows for it)."""

    def tables() -> Iterator:
        filled = set()
        for item in read_ahead(rows(dataset, accession, kind, files, supplementary, listed)):
            filled.add(item.meta.table_name)
            yield item
        for name in TABLES.keys() - filled:
            yield dlt.mark.with_table_name(TABLES[name].empty_table(), name)

    return dlt.resource(tables, name="geo", write_disposition="append")


def rows(dataset: str, accession: str, kind: str, files, supplementary, listed) -> Iterator:
    if kind == "series":
        yield from parse_series(dataset, accession, files, listed)
    for url, path in files if kind != "series" else []:
        with blame(dataset, url):
            yield from (parse_gds if kind == "datasets" else parse_annot)(accession, path)
    for url, path in supplementary:
        yield from parse_supplementary(dataset, accession, url, path)


class Unsupported(ValueError):
    """A well-formed GEO file in a layout Omicslake does not read."""


@contextlib.contextmanager
def blame(dataset: str, url: str):
    """Errors while parsing a file become one DatasetError naming it."""
    try:
        yield
    except Unsupported as e:
        fix = "remove the accession from sources.geo: Omicslake does not read this layout"
        raise DatasetError(dataset, f"GEO file in a layout not supported: {e}", Path(url).name, fix=fix) from e
    except (pa.ArrowInvalid, ValueError, KeyError, TypeError, OSError, EOFError) as e:
        cause = first_line(e)
        if "conversion error to double" in cause:
            cause += " (a value column holds text: only numeric GEO tables load into geo.expression)"
        fix = "the file is malformed upstream: remove the accession from sources.geo (or report the file to GEO)"
        raise DatasetError(dataset, f"cannot parse GEO file: {cause}", Path(url).name, fix=fix) from e


def table(name: str, rows: list[dict]) -> Iterator:
    """Rows as an Arrow table of the lake table `name`, with its column types; none if empty."""
    if rows:
        yield dlt.mark.with_table_name(pa.Table.from_pylist(rows, schema=TABLES[name]), name)


def long_values(batch: pa.RecordBatch, name: str, ids: dict[str, str | None]) -> pa.Table:
    """probe x sample values (first column: probe ids, GSM... columns: values) -> one row per
    (sample, probe) of table `name`; `ids` are the columns that are the same in every row."""
    samples = [n for n in batch.schema.names if n.startswith("GSM")]
    probes, sample_ids, values = melt(batch, samples)
    columns = {key: constant(value, len(values)) for key, value in ids.items()}
    columns |= {"sample_id": sample_ids, "probe_id": probes, "value": values}
    if "IDENTIFIER" in batch.schema.names:
        columns["identifier"] = tiled(batch.column("IDENTIFIER"), len(samples))
    schema = TABLES[name]
    return pa.table([columns[f.name] for f in schema], schema=schema)


# --- series (series matrix or family SOFT) ------------------------------------------------------


def geo_date(text: str | None):
    """`Mar 16 2012` (series, samples, GDS), or `04/06/2003` (GDS of 2002-2004)."""
    for layout in ("%b %d %Y", "%m/%d/%Y") if text else ():
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, layout).date()
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


def file_urls(attrs: dict) -> list[str]:
    """URLs of `supplementary_file` / `supplementary_file_N` header values; `NONE` means none."""
    return [
        url
        for key, values in attrs.items()
        if key.startswith("supplementary_file")
        for url in values
        if url and url.upper() != "NONE"
    ]


def supplementary_rows(series_id: str, series: dict, samples: list[dict], listed: list[Upstream]) -> list[dict]:
    """Series files from the `suppl/` listing (with sizes) and from the header, then each sample's."""

    def row(level: str, sample_id: str | None, url: str, size: int | None) -> dict:
        name = Path(url).name
        return {
            "series_id": series_id,
            "level": level,
            "sample_id": sample_id,
            "url": url,
            "file_name": name,
            "size": size,
        }

    rows = [row("series", None, f.url, f.size) for f in listed]
    in_folder = {r["file_name"] for r in rows}
    rows += [row("series", None, url, None) for url in file_urls(series) if Path(url).name not in in_folder]
    for attrs in samples:
        rows += [row("sample", first(attrs, "geo_accession"), url, None) for url in file_urls(attrs)]
    return rows


def sample_rows(series_id: str, samples: list[dict]) -> tuple[list[dict], list[dict]]:
    """(samples, sample_characteristics) rows."""
    rows, characteristics = [], []
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
    return rows, characteristics


def parse_series(dataset: str, accession: str, files: list[tuple[str, Path]], listed: list[Upstream]) -> Iterator:
    """Tables of a series: from its series matrices (one per platform), else its family SOFT."""
    if len(files) == 1 and Path(files[0][0]).name.endswith("_family.soft.gz"):
        with blame(dataset, files[0][0]):
            yield from parse_family_soft(accession, files[0][1], listed)
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
    yield from table("series", [series_row(merged)])
    samples = [s for _, m in matrices for s in m.samples]
    yield from series_tables(accession, merged, samples, listed)
    for url, matrix in matrices:
        with blame(dataset, url):
            platform = first(matrix.samples[0], "platform_id") if matrix.samples else None
            reader = soft.read_table(matrix.table, {"ID_REF": pa.string()}, quoted=True, default_type=pa.float64())
            for batch in reader:
                ids = {"series_id": accession, "platform_id": platform}
                yield dlt.mark.with_table_name(long_values(batch, "expression", ids), "expression")


def series_tables(accession: str, series: dict, samples: list[dict], listed: list[Upstream]) -> Iterator:
    sample_table, characteristics = sample_rows(accession, samples)
    yield from table("samples", sample_table)
    yield from table("sample_characteristics", characteristics)
    yield from table("supplementary_files", supplementary_rows(accession, series, samples, listed))


def parse_family_soft(accession: str, path: Path, listed: list[Upstream]) -> Iterator:
    series, samples = {}, []
    for entity in soft.read_soft(path):
        attrs = {re.sub(r"^(series|sample)_", "", k): v for k, v in entity.attrs.items()}
        if entity.kind == "SERIES":
            series = attrs
            yield from table("series", [series_row(attrs)])
        elif entity.kind == "SAMPLE":
            samples.append(attrs)
            if entity.table is not None:
                probe, value = sample_columns(entity)
                reader = soft.read_table(entity.table, {probe: pa.string(), value: pa.float64()})
                for batch in reader:
                    values = batch.select([probe, value]).rename_columns(["ID_REF", entity.id])
                    ids = {"series_id": accession, "platform_id": first(attrs, "platform_id")}
                    yield dlt.mark.with_table_name(long_values(values, "expression", ids), "expression")
    yield from series_tables(accession, series, samples, listed)


def sample_columns(entity: soft.Entity) -> tuple[str, str]:
    """A family SOFT sample table's (probe, value) columns: ID_REF and VALUE; a SAGE sample's tag
    and its count (TAG, COUNT; its platform's ids are the tags, TPM is the count scaled)."""
    if not entity.columns:  # undescribed: the header row names them
        return "ID_REF", "VALUE"
    for probe, value in (("ID_REF", "VALUE"), ("TAG", "COUNT")):
        if probe in entity.columns and value in entity.columns:
            return probe, value
    raise Unsupported(f"sample {entity.id}'s table has columns {', '.join(entity.columns)}, no ID_REF and VALUE")


# --- GDS ----------------------------------------------------------------------------------------


def parse_gds(accession: str, path: Path) -> Iterator:
    info, subsets, tables = {}, [], 0
    for entity in soft.read_soft(path):
        attrs = {re.sub(r"^(dataset|subset)_", "", k): v for k, v in entity.attrs.items()}
        if entity.kind == "DATASET" and entity.table is None:
            info = attrs
            yield from table(
                "datasets",
                [
                    {
                        "dataset_id": entity.id,
                        "title": first(attrs, "title"),
                        "description": joined(attrs, "description"),
                        "platform_id": first(attrs, "platform"),
                        "series_id": first(attrs, "reference_series"),
                        "value_type": first(attrs, "value_type"),
                        "sample_organism": first(attrs, "sample_organism") or first(attrs, "organism"),
                        "sample_type": first(attrs, "sample_type"),
                        "sample_count": int(first(attrs, "sample_count") or first(attrs, "total_samples") or 0),
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
            yield from table("dataset_subsets", subsets)
            subsets, tables = [], tables + 1
            reader = soft.read_table(
                entity.table, {"ID_REF": pa.string(), "IDENTIFIER": pa.string()}, default_type=pa.float64()
            )
            ids = {
                "dataset_id": entity.id,
                "series_id": first(info, "reference_series"),
                "platform_id": first(info, "platform"),
            }
            for batch in reader:
                yield dlt.mark.with_table_name(long_values(batch, "dataset_expression", ids), "dataset_expression")
    if not tables:  # never an empty load that looks like a success
        raise Unsupported(f"no data table found in {accession}'s SOFT file")


# --- platform annotation ------------------------------------------------------------------------


def parse_annot(accession: str, path: Path) -> Iterator:
    """A GPL `.annot.gz`: NCBI's file has an `^Annotation` entity (no `^PLATFORM`) whose table
    holds the probes; each GO column name comes twice (terms, then ids: `go_function_2`)."""
    for entity in soft.read_soft(path):
        if entity.table is None:
            continue
        platform = entity.first("annotation_platform") or accession
        if platform != accession:
            raise ValueError(f"file annotates platform {platform}, not {accession}")
        for batch in soft.read_table(entity.table, default_type=pa.string()):
            names = ["probe_id" if n == "ID" else n for n in batch.schema.names]
            probes = pa.Table.from_batches([batch]).rename_columns(names)
            ids = pa.repeat(pa.scalar(accession, pa.string()), len(probes))
            yield dlt.mark.with_table_name(probes.add_column(0, "platform_id", ids), "platform_probes")


# --- supplementary tables -----------------------------------------------------------------------


def parse_supplementary(dataset: str, accession: str, url: str, path: Path) -> Iterator:
    """A supplementary table (e.g. a counts matrix): its numeric columns, long, keyed by the first column."""
    name = Path(url).name
    schema = TABLES["supplementary_values"]
    for batch in read_batches(dataset, path, infer_format(name)):
        numeric = [f.name for f in batch.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
        features, columns, values = melt(batch, [c for c in numeric if c != batch.schema.names[0]])
        rows = len(values)
        ids = [constant(accession, rows), constant(name, rows)]
        yield dlt.mark.with_table_name(
            pa.table([*ids, features, columns, values], schema=schema), "supplementary_values"
        )
