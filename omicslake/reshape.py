"""Arrow reshaping any source can use: wide tables to long, dictionary-encoded id columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CODED = pa.dictionary(pa.int32(), pa.string())


def coded(indices: np.ndarray, values: list | pa.Array) -> pa.DictionaryArray:
    """Dictionary-encoded strings: Parquet stores them so anyway, and repeats cost an int each."""
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values, pa.string()))


def constant(value: str | None, rows: int) -> pa.Array:
    """A column holding one value (or NULL) in every row, dictionary-encoded."""
    return pa.nulls(rows, CODED) if value is None else coded(np.zeros(rows, np.int32), [value])


def melt(batch: pa.RecordBatch, columns: list[str], key: int = 0) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Wide -> long: (row id from column `key`, column name, float64 value) for each of `columns`."""
    ids = tiled(batch.column(key), len(columns))
    names = coded(np.repeat(np.arange(len(columns), dtype=np.int32), batch.num_rows), columns)
    values = [batch.column(c).cast(pa.float64()) for c in columns]
    return ids, names, pa.concat_arrays(values) if values else pa.array([], pa.float64())


def tiled(column: pa.Array, times: int) -> pa.DictionaryArray:
    """`column` (as text) `times` times over, dictionary-encoded: the row ids of a melted batch."""
    return coded(np.tile(np.arange(len(column), dtype=np.int32), times), column.cast(pa.string()))
