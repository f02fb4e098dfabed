"""Reading csv/tsv/parquet/jsonl/json (plain or gzip) as Arrow batches, and failing clearly."""

import gzip
import itertools
import json
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omicslake import formats
from omicslake.errors import DatasetError
from tests.conftest import write_gz


def table(path, fmt, **kw):
    return pa.Table.from_batches(list(formats.read_batches("http.t", path, fmt, **kw)))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.tsv.gz", "tsv"),
        ("a.TXT.GZ", "tsv"),
        ("x.parquet", "parquet"),
        ("r.ndjson", "jsonl"),
        ("r.jsonl.gz", "jsonl"),
        ("r.json", "json"),
        ("README", None),
    ],
)
def test_infer_format(name, fmt):
    assert formats.infer_format(name) == fmt


def test_tsv_gzip_with_custom_nulls(tmp_path):
    path = write_gz(tmp_path / "genes.tsv.gz", "id\tsymbol\tscore\n1\tA1BG\t0.5\n2\t-\t-\n")
    t = table(path, "tsv", null_values=["", "-"])
    assert t.column("symbol").to_pylist() == ["A1BG", None]
    assert t.column("score").to_pylist() == [0.5, None]


def test_gzip_detected_by_content_not_name(tmp_path):
    path = write_gz(tmp_path / "download", "a,b\n1,x\n")
    assert table(path, "csv").to_pylist() == [{"a": 1, "b": "x"}]


def test_all_empty_column_is_kept_as_string(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,empty\n1,\n2,\n")
    t = table(path, "csv")
    assert t.schema.field("empty").type == pa.string()  # dlt would drop a null-typed column


def test_types_hold_beyond_the_first_block(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "BLOCK_SIZE", 1 << 14)  # about 600 rows a block
    rows = ["id\tchrom\tscore\tlate\tcount\tday"]
    for i in range(5000):
        chrom = "X" if i == 900 else str(i % 22 + 1)  # an integer column until block 2
        score = "2.5" if i == 3000 else str(i)  # an integer column until block 5
        late = "seen" if i == 4900 else ""  # empty until the last block
        count = str(i) if i > 2000 else ""  # empty in block 1, integers later
        day = "unknown" if i == 4000 else "2026-11-26"  # a date column, then text
        rows.append(f"{i}\t{chrom}\t{score}\t{late}\t{count}\t{day}")
    path = write_gz(tmp_path / "big.tsv.gz", "\n".join(rows) + "\n")
    batches = list(formats.read_batches("http.t", path, "tsv"))
    assert len(batches) > 2
    t = pa.Table.from_batches(batches)
    assert t.num_rows == 5000
    types = {f.name: f.type for f in t.schema}
    assert types == {
        "id": pa.int64(),
        "chrom": pa.string(),
        "score": pa.float64(),
        "late": pa.string(),
        "count": pa.int64(),
        "day": pa.string(),
    }
    assert t.column("chrom")[900].as_py() == "X"
    assert t.column("late").to_pylist().count("seen") == 1
    assert t.column("count")[4999].as_py() == 4999


def test_parquet_and_json_variants(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "x.parquet")
    assert table(tmp_path / "x.parquet", "parquet").num_rows == 2
    (tmp_path / "r.jsonl").write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n')
    assert table(tmp_path / "r.jsonl", "jsonl").column("b").to_pylist() == ["x", None]
    (tmp_path / "r.json").write_text(json.dumps({"results": [{"a": 1}, {"a": 2}]}))
    assert table(tmp_path / "r.json", "json").column("a").to_pylist() == [1, 2]


def test_malformed_csv_names_file_and_cause(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DatasetError, match=r"http\.t: bad\.csv: malformed csv: .*Expected 2 columns, got 3"):
        table(path, "csv")


@pytest.mark.parametrize("keep", [0.5, -5])  # cut mid-stream, or only the gzip trailer (CRC + size)
def test_truncated_gzip_names_file(tmp_path, keep):
    whole = gzip.compress(("a,b\n" + "".join(f"{i * 7919 % 10007},{i}\n" for i in range(50000))).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: int(len(whole) * keep) if keep > 0 else keep])
    with pytest.raises(DatasetError, match=r"http\.t: cut\.csv\.gz: cannot read file \(truncated or corrupt\?\)"):
        table(path, "csv")


def test_malformed_json(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('[{"a": 1},')
    with pytest.raises(DatasetError, match=r"r\.json: malformed json"):
        table(path, "json")


def test_read_ahead_keeps_order_bounds_the_lead_and_passes_errors_on():
    from omicslake.formats import read_ahead

    produced = []

    def items():
        for i in range(10):
            produced.append(i)
            yield i
        raise ValueError("malformed at 10")

    stream = read_ahead(items(), depth=2)
    assert next(stream) == 0
    time.sleep(0.2)
    assert len(produced) <= 1 + 2 + 1  # the one consumed, two queued, one waiting to be queued
    assert list(itertools.islice(stream, 9)) == list(range(1, 10))
    with pytest.raises(ValueError, match="malformed at 10"):
        next(stream)
    for source in (iter(range(1000)), iter(range(3)), items()):  # producing, finished, failed
        early = read_ahead(source, depth=2)
        assert next(early) == 0
        time.sleep(0.2)
        early.close()  # the consumer stops: the producer thread ends too, whatever it was doing
        assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
