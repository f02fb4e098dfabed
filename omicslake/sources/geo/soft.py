"""Readers for NCBI GEO's text formats: SOFT (family, GDS, GPL annot) and series matrix files.

Headers are parsed line by line; data tables stream into Arrow through pyarrow's CSV reader over
the bytes between the table markers, so a 50,000 x 2,000 matrix never sits in memory whole.
Older GEO files mix Latin-1 into UTF-8: lines that are not valid UTF-8 are read as Latin-1.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

NULLS = ["", "null", "NULL", "NA", "N/A", "NaN", "nan", "--", "---"]
BLOCK_SIZE = 16 << 20


def open_text(path: Path) -> io.BufferedReader:
    """A binary line reader over a plain or gzip file (gzip checked for truncation)."""
    raw = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 (the caller owns the reader)
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=1 << 20)
    return raw


def decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


class TableStream(io.RawIOBase):
    """The bytes of a table section, up to (not including) its end marker, as UTF-8.

    Reads in pieces of up to 1 MiB that end at a line end, so the end marker is always seen
    whole and the underlying reader stops right after it (the next entity reads on from there).
    """

    END = re.compile(rb"![A-Za-z_]*_table_end[ \t\r]*(?:\n|$)", re.IGNORECASE)

    def __init__(self, lines: io.BufferedReader):
        self.lines = lines
        self.piece, self.offset, self.done = memoryview(b""), 0, False

    def readable(self) -> bool:
        return True

    def empty(self) -> bool:
        """No data rows left."""
        return not self.available() and not self.next_piece()

    def available(self) -> int:
        return len(self.piece) - self.offset

    def readinto(self, buffer) -> int:
        view, written = memoryview(buffer).cast("B"), 0
        while written < len(view) and (self.available() or self.next_piece()):
            n = min(len(view) - written, self.available())
            view[written : written + n] = self.piece[self.offset : self.offset + n]
            written, self.offset = written + n, self.offset + n
        return written

    def next_piece(self) -> bool:
        """Load the next piece of the table; False at its end."""
        if self.done:
            return False
        chunk = self.lines.peek(1 << 20)
        end = self.find_end(chunk)
        if not chunk:
            data, self.done = b"", True
        elif end >= 0:
            data = self.lines.read(end)
            self.lines.readline()  # the end marker line
            self.done = True
        elif (last := chunk.rfind(b"\n")) >= 0:
            data = self.lines.read(last + 1)
        else:  # the buffer ends inside a line: take that line whole
            data = self.lines.readline()
            if self.END.match(data):
                data, self.done = b"", True
        self.piece, self.offset = memoryview(utf8(data)), 0
        return bool(data) or self.next_piece()

    def find_end(self, chunk: bytes) -> int:
        """Offset of the end-marker line in `chunk` (which starts at a line start), or -1.

        Only lines starting with `!` are candidates: data rows start with an id.
        """
        start = 0 if chunk[:1] == b"!" else next_line_with(chunk, b"!", 0)
        while start >= 0:
            if self.END.match(chunk, start):
                return start
            start = next_line_with(chunk, b"!", start + 1)
        return -1

    def drain(self) -> None:
        while self.next_piece():
            self.offset = len(self.piece)


def next_line_with(chunk: bytes, prefix: bytes, after: int) -> int:
    """Offset of the next line (after `after`) that starts with `prefix`, or -1."""
    found = chunk.find(b"\n" + prefix, after)
    return found + 1 if found >= 0 else -1


def utf8(data: bytes) -> bytes:
    """`data` as UTF-8: lines that are not (older GEO files) are read as Latin-1."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return b"".join(decode(line).encode("utf-8") for line in data.splitlines(keepends=True))


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique: a second `GO:Function` becomes `GO:Function_2`."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def read_table(
    stream: TableStream,
    column_types: dict[str, pa.DataType] | None = None,
    quoted: bool = False,
    default_type: pa.DataType | None = None,
) -> Iterator[pa.RecordBatch]:
    """Arrow batches of a tab-separated table section; the header row names the columns.

    `default_type` applies to every column not in `column_types` (e.g. float64 for sample values).
    """
    line = stream.lines.readline()
    if stream.END.match(line):  # a table with no header and no rows
        stream.done = True
        return iter([])
    names = unique_names([h.strip('"') for h in decode(line).rstrip("\r\n").split("\t")])
    types = dict(column_types or {})
    if default_type is not None:
        types = {name: types.get(name, default_type) for name in names}
    if stream.empty():  # a header and no rows: sequencing series keep their data elsewhere
        return iter([])
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char='"' if quoted else False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=NULLS,
            strings_can_be_null=True,
            quoted_strings_can_be_null=not quoted,  # in a matrix ids are quoted: a probe "NA" is an id
        ),
    )


@dataclasses.dataclass
class Entity:
    """One `^KIND = id` block of a SOFT file."""

    kind: str  # DATABASE, SERIES, PLATFORM, SAMPLE, DATASET, SUBSET, ANNOTATION
    id: str
    attrs: dict[str, list[str]]  # `!Key = value` lines, repeats kept in order
    columns: dict[str, str]  # `#NAME = description`
    table: TableStream | None = None  # the entity's data table, read it before the next entity

    def first(self, key: str) -> str | None:
        values = self.attrs.get(key.lower())
        return values[0] if values else None


def read_soft(path: Path) -> Iterator[Entity]:
    """SOFT entities in file order; an entity with a table is yielded when its table starts."""
    lines = open_text(path)
    entity: Entity | None = None
    while True:
        raw = lines.readline()
        if not raw:
            break
        line = decode(raw).rstrip("\r\n")
        if line.startswith("^"):
            if entity and entity.table is None:
                yield entity
            kind, _, ident = line[1:].partition("=")
            entity = Entity(kind.strip().upper(), ident.strip(), {}, {})
        elif entity is None:
            continue
        elif line.lower().endswith("_table_begin") and line.startswith("!"):
            entity.table = TableStream(lines)
            yield entity
            entity.table.drain()  # whatever the consumer left unread
        elif line.startswith("!"):
            key, _, value = line[1:].partition("=")
            entity.attrs.setdefault(key.strip().lower(), []).append(value.strip())
        elif line.startswith("#"):
            key, _, value = line[1:].partition("=")
            entity.columns[key.strip()] = value.strip()
            if lines.peek(1)[:1] not in (b"#", b"!", b"^", b"", b"\n", b"\r"):
                # GDS files of 2002-2004: the table's header row follows the column descriptions,
                # with no `!dataset_table_begin`, and the table runs to the end of the file
                entity.table = TableStream(lines)
                yield entity
                entity.table.drain()
    if entity and entity.table is None:
        yield entity


@dataclasses.dataclass
class SeriesMatrix:
    """A series matrix file: `!Series_*` values, `!Sample_*` values per sample, the data table."""

    series: dict[str, list[str]]  # key without the `Series_` prefix, lower case
    samples: list[dict[str, list[str]]]  # one dict per sample column, key without `Sample_`
    table: TableStream


def unquote(cell: str) -> str:
    cell = cell.strip()
    return cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == '"' else cell


def read_series_matrix(path: Path) -> SeriesMatrix:
    """Parse the header of a series matrix; the caller streams `.table` (read_table, quoted)."""
    lines = open_text(path)
    series: dict[str, list[str]] = {}
    samples: list[dict[str, list[str]]] = []
    while True:
        raw = lines.readline()
        if not raw:
            raise ValueError("no !series_matrix_table_begin line: not a series matrix file")
        line = decode(raw).rstrip("\r\n")
        if line.lower() == "!series_matrix_table_begin":
            return SeriesMatrix(series, samples, TableStream(lines))
        if not line.startswith("!"):
            continue
        key, *cells = line[1:].split("\t")
        kind, _, attr = key.partition("_")
        values = [unquote(c) for c in cells]
        if kind == "Series":
            series.setdefault(attr.lower(), []).extend(values)
        elif kind == "Sample":
            while len(samples) < len(values):
                samples.append({})
            for sample, value in zip(samples, values, strict=False):
                sample.setdefault(attr.lower(), []).append(value)
