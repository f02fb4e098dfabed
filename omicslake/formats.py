"""Read a tabular file (csv, tsv, parquet, jsonl, json; optionally gzip) as Arrow batches.

Batches stream from disk, so memory stays bounded by the block size, not the file size.
"""

from __future__ import annotations

import gzip
import itertools
import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from omicslake.errors import DatasetError, first_line

FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
BLOCK_SIZE = 16 << 20


def infer_format(name: str) -> str | None:
    """Format from a file name, ignoring a trailing .gz: `genes.tsv.gz` -> tsv."""
    suffixes = [s.lower() for s in Path(name).suffixes if s.lower() not in (".gz", ".gzip")]
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_batches(dataset: str, path: Path, fmt: str, null_values: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Yield Arrow batches of `path`; any parse error becomes one DatasetError naming the file."""
    name = path.name
    try:
        if fmt == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=256_000)
        elif fmt in ("csv", "tsv"):
            yield from read_delimited(path, "\t" if fmt == "tsv" else ",", null_values)
        elif fmt == "jsonl":
            reader = pajson.open_json(open_stream(path), read_options=pajson.ReadOptions(block_size=BLOCK_SIZE))
            yield from (no_null_columns(b) for b in reader)
        elif fmt == "json":
            rows = json.load(open_stream(path))
            if isinstance(rows, dict):  # {"key": [records]} envelopes: take the one list
                lists = [v for v in rows.values() if isinstance(v, list)]
                rows = lists[0] if len(lists) == 1 else [rows]
            yield from no_null_columns(pa.Table.from_pylist(rows)).to_batches()
        else:
            raise DatasetError(
                dataset, f"unknown format {fmt!r}", name, fix=f"set `format` to one of {', '.join(FORMATS)}"
            )
    except DatasetError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        fix = "check `format` (and `null_values`) in the config; if the file is broken upstream, report it or drop it"
        raise DatasetError(dataset, f"malformed {fmt}: {first_line(e)}", name, fix=fix) from e
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        fix = "the upstream file is cut short or corrupt: check it at its source, or `format` in the config"
        raise DatasetError(dataset, f"cannot read file (truncated or corrupt?): {first_line(e)}", name, fix=fix) from e


def open_stream(path: Path):
    """A binary stream of the file's content. Python's gzip reader (not Arrow's) is used for gzip
    because it checks the end-of-stream marker and CRC: Arrow's stops quietly at a truncation."""
    return gzip.open(path, "rb") if is_gzip(path) else pa.OSFile(str(path))


def read_delimited(path: Path, delimiter: str, null_values: list[str] | None) -> Iterator[pa.RecordBatch]:
    """Stream a CSV/TSV with column types that hold for the whole file.

    pyarrow infers types from the first block only. A file that fits in one block is read once;
    a larger one gets a first pass that widens every column whose later values do not fit
    (int -> double -> string), so no batch is yielded with a type the next one breaks.
    """
    convert = dict(strings_can_be_null=True, **({"null_values": null_values} if null_values else {}))
    column_types: dict[str, pa.DataType] = {}

    def reader():
        return pacsv.open_csv(
            open_stream(path),
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=column_types, **convert),
        )

    first = reader()
    try:
        head = list(itertools.islice(first, 2))
    except pa.ArrowInvalid:
        head = []  # block 2 broke block 1's types: settle them over the whole file below
    if len(head) == 1:  # the whole file was one block: inferred types already hold
        yield no_null_columns(head[0])
        return
    while not types_hold(reader, first.schema, column_types):
        pass
    yield from (no_null_columns(b) for b in reader())


def types_hold(reader, schema: pa.Schema, column_types: dict) -> bool:
    """Read the whole file once; on a value that does not fit its column, widen it and say so."""
    try:
        for _ in reader():
            pass
        return True
    except pa.ArrowInvalid as e:
        match = re.search(r"CSV column #(\d+).*conversion error to ([^:]+): invalid value '(.*)'", str(e))
        if not match:
            raise
        column = schema.names[int(match[1])]
        if column_types.get(column) == pa.string():
            raise
        column_types[column] = widen(match[2], match[3])
        return False


def widen(current: str, value: str) -> pa.DataType:
    """The narrowest of int64 < float64 < string that holds `value` and what the column held."""
    if current == "null" and re.fullmatch(r"[+-]?\d+", value.strip()):
        return pa.int64()
    if current in ("null", "int64") and is_number(value):
        return pa.float64()
    return pa.string()


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def no_null_columns(batch: pa.RecordBatch | pa.Table):
    """Columns with no value at all have Arrow type null, which dlt drops: keep them as strings."""
    if not any(pa.types.is_null(t) for t in batch.schema.types):
        return batch
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in batch.schema])
    return batch.cast(schema)


def read_ahead(items: Iterable, depth: int = 2) -> Iterator:
    """`items`, produced by a thread of their own up to `depth` ahead of the consumer.

    Parsing (CSV, gzip) and dlt's Parquet writing both release the GIL: run side by side they take
    the time of the slower one, not the sum. Memory stays bounded by `depth` items. A consumer that
    stops early (dlt failed) stops the producer, and `items` is closed in its own thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry) -> bool:
        """Queue `entry` unless the consumer has gone."""
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not offer((item, None)):
                    break
            else:
                offer((done, None))
        except BaseException as e:  # handed to the consumer, raised there
            offer((done, e))
        finally:
            if hasattr(items, "close"):
                items.close()  # a generator's files and readers, closed by the thread that used them

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()
