"""CZ CELLxGENE Census (`cellxgene_census` + `tiledbsoma`): filtered cells, genes and counts.

Config (`sources.cellxgene`): census_version (a pinned release), census_uri (a mirror, local or
s3://; overrides the version), tiledb_config, read_buffer_mb, queries. Datasets:

    census    the census's own tables: `datasets` and `summary` (census_info), and `var` of every
              organism a query names; one chunk
    <query>   one per query: `obs` (its cells) and `x` (their non-zero values, COO), in chunks of
              about `chunk_cells` matching cells (obs joinid ranges), one ingest job each

Rows carry `census_version`, the census's build date (census_info/summary), which is also what
the probe compares: the same census and the same config entry mean nothing to do.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from omicslake.download import DownloadSettings
from omicslake.errors import RERUN, SERVER_DOWN, ConfigError, DatasetError, extra, first_line
from omicslake.manifest import Upstream
from omicslake.sources.base import Dataset, Plan
from omicslake.urls import check_url

CENSUS = "census"  # the dataset of the census-level tables
SECRET = re.compile(r"key|secret|password|token|credential|identity", re.IGNORECASE)  # S3, Azure, GCS
FILTER_ERROR = re.compile(r"QueryCondition|parse|syntax|does not exist|not in schema|unknown", re.IGNORECASE)


def datasets(block: dict) -> dict[str, dict]:
    """The census dataset and one dataset per query (its name is the lake rows' `query`)."""
    census = {key: block.get(key) for key in ("census_version", "census_uri", "tiledb_config", "read_buffer_mb")}
    if census["census_uri"]:
        check_url("sources.cellxgene.census_uri", census["census_uri"])
    for key in census["tiledb_config"] or {}:
        if SECRET.search(key):
            raise ConfigError(
                f"config key sources.cellxgene.tiledb_config.{key}: a credential here would be stored with every load",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment instead "
                "(with vfs.s3.no_sign_request: 'false')",
            )
    queries = block.get("queries") or []
    out = {}
    for i, query in enumerate(queries):
        if query["name"] == CENSUS:
            raise ConfigError(
                f"config key sources.cellxgene.queries[{i}].name: {CENSUS!r} is reserved (census tables)",
                "choose another name",
            )
        if query["name"] in out:
            raise ConfigError(
                f"config key sources.cellxgene.queries[{i}].name: {query['name']!r} is used twice",
                "give each query its own name",
            )
        out[query["name"]] = {"kind": "query", **census, **query}
    if out:
        out[CENSUS] = {"kind": CENSUS, **census, "organisms": sorted({q["organism"] for q in queries})}
    return out


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    """Where the census is and its build date: a new release (or a mirror updated) is a change."""
    return [census_upstream(str(dataset), entry)]


def census_upstream(dataset: str, entry: dict) -> Upstream:
    with open_census(dataset, location(entry)) as census:
        return Upstream(url=census.uri, version=build_date(census))


def chunks(dataset: Dataset, entry: dict, settings: DownloadSettings) -> list[dict]:
    """The dataset's chunks, deterministic for a census and a query: the sorted obs joinids that
    match the filter, cut every `chunk_cells`, as joinid ranges [first, last]. A query matching no
    cell is one empty chunk (a valid, empty load)."""
    import numpy as np

    with open_census(str(dataset), location(entry)) as census:
        version = build_date(census)
        if entry["kind"] == CENSUS:
            return [{"census_version": version, "cells": None}]
        exp = experiment(str(dataset), census, entry)
        with axis_query(exp, entry) as query:
            checked(str(dataset), entry, query.var_joinids)  # a bad gene filter fails here, not in a chunk
            ids = np.sort(checked(str(dataset), entry, query.obs_joinids).to_numpy())
    size = entry["chunk_cells"]
    if not len(ids):
        return [{"census_version": version, "first": 0, "last": -1, "cells": 0}]
    return [
        {
            "census_version": version,
            "first": int(ids[start]),
            "last": int(ids[min(start + size, len(ids)) - 1]),
            "cells": int(min(size, len(ids) - start)),
        }
        for start in range(0, len(ids), size)
    ]


def plan_chunk(dataset: Dataset, entry: dict, chunk: dict, workdir: Path, settings: DownloadSettings) -> Plan:
    """The dlt source of one chunk: obs and x of its cells, or the census tables."""
    import dlt

    name = str(dataset)
    upstream = census_upstream(name, entry)
    if upstream.version != chunk["census_version"]:
        raise DatasetError(
            name,
            f"the census changed from {chunk['census_version']} to {upstream.version} since the chunks were planned",
            upstream.url,
            fix="run again to plan them anew",
        )
    if entry["kind"] == CENSUS:
        return Plan(
            [upstream], dlt.resource(census_rows(name, entry, chunk), name="census", write_disposition="append")
        )
    # x: billions of rows whose query and census_version are the load's own: their folder holds
    # them (Parquet statistics of two dictionary columns would cost a third of the job)
    partitions = {"x": {"query": entry["name"], "census_version": chunk["census_version"]}}
    resource = dlt.resource(query_rows(name, entry, chunk), name="query", write_disposition="append")
    return Plan([upstream], resource, partitions)


def query_rows(dataset: str, entry: dict, chunk: dict):
    """obs, then x (without the columns its folder holds), of the chunk's cells: Arrow tables
    marked with their table. One axis query reads both: a second census handle costs memory."""
    import dlt
    import pyarrow as pa

    from omicslake.reshape import CODED, constant

    columns = ["soma_joinid", *entry["obs_columns"]]
    # Arrow's jemalloc keeps freed pages for a second: batches come faster than that, so a chunk's
    # memory would grow with its cells (bench/bench_cellxgene.py). Return them at once.
    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pa.jemalloc_set_decay_ms(0)

    def labelled(table: pa.Table) -> pa.Table:
        """query and census_version first, categories as one dictionary type across chunks."""
        rows = table.num_rows
        out = {"query": constant(entry["name"], rows), "census_version": constant(chunk["census_version"], rows)}
        for field in table.schema:
            column = table.column(field.name)
            if pa.types.is_dictionary(field.type):
                column = column.cast(CODED)
            elif pa.types.is_large_string(field.type):
                column = column.cast(pa.string())
            out[field.name] = column
        return dlt.mark.with_table_name(pa.table(out), "obs")

    with open_census(dataset, location(entry)) as census:
        exp = experiment(dataset, census, entry)
        with axis_query(exp, entry, (slice(chunk["first"], chunk["last"]),)) as query:
            cells = 0
            empty = pa.Table.from_batches([], exp.obs.schema).select(columns)
            for table in or_empty(query.obs(column_names=columns) if chunk["cells"] else (), empty):
                cells += table.num_rows
                yield labelled(table.select(columns))
            if cells != chunk["cells"]:
                span, planned = f"{chunk['first']}-{chunk['last']}", chunk["cells"]
                raise DatasetError(
                    dataset, f"chunk of obs joinids {span}: {cells} cells read, {planned} planned", fix=RERUN
                )
            empty = pa.Table.from_batches([], exp.ms["RNA"].X[entry["x_layer"]].schema)
            for table in or_empty(query.X(entry["x_layer"]).tables() if chunk["cells"] else (), empty):
                yield dlt.mark.with_table_name(table.rename_columns(["cell_joinid", "gene_joinid", "value"]), "x")


def census_rows(dataset: str, entry: dict, chunk: dict):
    """The census's datasets and summary, and var of each organism the queries use."""
    import dlt
    import pyarrow as pa

    from omicslake.reshape import constant

    def labelled(table: pa.Table, name: str, **labels) -> pa.Table:
        front = {"census_version": chunk["census_version"], **labels}
        for i, (column, value) in enumerate(front.items()):
            table = table.add_column(i, column, constant(value, table.num_rows))
        strings = [f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema]
        return dlt.mark.with_table_name(table.cast(pa.schema(strings)), name)

    with open_census(dataset, location(entry)) as census:
        for name in ("datasets", "summary"):
            yield labelled(census["census_info"][name].read().concat(), name)
        for organism in entry["organisms"]:
            exp = experiment(dataset, census, {**entry, "organism": organism})
            yield labelled(exp.ms["RNA"].var.read().concat(), "var", organism=organism)


def or_empty(tables, empty):
    """The tables, or `empty` when there are none: every chunk declares its tables."""
    seen = False
    for table in tables:
        seen = True
        yield table
    if not seen:
        yield empty


def location(entry: dict) -> dict:
    """What open_soma needs: census_uri (wins) or census_version, and the TileDB config."""
    buffer = (entry.get("read_buffer_mb") or 256) * 2**20
    config = {
        "soma.init_buffer_bytes": buffer,  # the Arrow batches X and obs are read in
        "py.init_buffer_bytes": buffer,
        # TileDB's sparse reader loads tiles up to this budget (default 10 GiB): without it a
        # chunk's memory grows with its cells (bench/bench_cellxgene.py)
        "sm.mem.total_budget": 2 * buffer,
        **(entry.get("tiledb_config") or {}),
    }
    if entry.get("census_uri"):
        return {"uri": entry["census_uri"], "tiledb_config": config}
    return {"census_version": entry["census_version"], "tiledb_config": config}


@contextlib.contextmanager
def open_census(dataset: str, where: dict):
    """cellxgene_census.open_soma, its failures one line naming the census."""
    cellxgene_census = extra("cellxgene_census", "cellxgene")

    try:
        census = cellxgene_census.open_soma(**where)
    except Exception as e:
        place = where.get("uri") or f"release {where.get('census_version')}"
        raise DatasetError(
            dataset,
            f"cannot open the census ({place}): {type(e).__name__}: {first_line(e)}",
            fix="check census_version / census_uri in the config, the network and S3 credentials; then run again",
        ) from None
    with census:
        yield census


def build_date(census) -> str:
    summary = census["census_info"]["summary"].read(column_names=["label", "value"]).concat().to_pydict()
    return dict(zip(summary["label"], summary["value"], strict=True))["census_build_date"]


def experiment(dataset: str, census, entry: dict):
    """The organism's Experiment; its obs columns and X layer checked against the query."""
    organisms = list(census["census_data"].keys())
    if entry["organism"] not in organisms:
        raise DatasetError(
            dataset, f"unknown organism {entry['organism']!r}", fix=f"set organism to one of {', '.join(organisms)}"
        )
    exp = census["census_data"][entry["organism"]]
    if entry["kind"] == CENSUS:
        return exp
    known = exp.obs.schema.names
    unknown = [c for c in entry["obs_columns"] if c not in known]
    if unknown:
        raise DatasetError(
            dataset, f"unknown obs column {unknown[0]!r}", fix=f"choose obs_columns among {', '.join(known)}"
        )
    layers = list(exp.ms["RNA"].X.keys())
    if entry["x_layer"] not in layers:
        raise DatasetError(
            dataset, f"unknown X layer {entry['x_layer']!r}", fix=f"set x_layer to one of {', '.join(layers)}"
        )
    return exp


@contextlib.contextmanager
def axis_query(exp, entry: dict, coords: tuple = ()):
    import tiledbsoma as soma

    obs = soma.AxisQuery(value_filter=entry.get("obs_value_filter"), coords=coords)
    var = soma.AxisQuery(value_filter=entry.get("var_value_filter"))
    with exp.axis_query("RNA", obs_query=obs, var_query=var) as query:
        yield query


def checked(dataset: str, entry: dict, read):
    """Call `read()`; a filter TileDB cannot parse becomes one line naming the query's filters, any
    other failure (a census that stops answering) one line saying so."""
    import tiledbsoma as soma

    try:
        return read()
    except (soma.SOMAError, ValueError, TypeError, SyntaxError) as e:
        if isinstance(e, SyntaxError) or FILTER_ERROR.search(str(e)):
            raise DatasetError(
                dataset,
                f"invalid filter (obs_value_filter {entry.get('obs_value_filter')!r}, "
                f"var_value_filter {entry.get('var_value_filter')!r}): {first_line(e)}",
                fix="correct the filter (TileDB-SOMA value filter syntax, e.g. tissue == 'lung')",
            ) from None
        raise DatasetError(
            dataset, f"reading the census failed: {type(e).__name__}: {first_line(e)}", fix=SERVER_DOWN
        ) from None
