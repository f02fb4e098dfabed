"""Benchmark: registering Parquet objects in place on a local S3 server (SeaweedFS, 127.0.0.1).

N objects (default 1,000 of 1,000 rows x 4 columns) in a bucket, registered three ways:

  ours    the s3 source with register_in_place: list the prefix, read every footer, then
          omicslake.register.register() (checks, ducklake_add_data_files, provenance, receipt)
  bare    one CALL ducklake_add_data_files(..., [N URLs]) into a table created beforehand:
          DuckLake's own cost given the objects
  glob    the same with one glob (`part-*.parquet`): DuckLake's fastest call, one listing where
          a list costs a request per object; the lower bound for registering in place
  INSERT  INSERT INTO t SELECT * FROM read_parquet([N URLs]): every byte read from S3 and
          written again into the lake

Public anchors for ducklake_add_data_files on cloud storage: 3-23 files/s.
Run by hand: .venv/bin/python bench/bench_s3_in_place.py [--objects 1000] [--rows 1000]
"""

# ruff: noqa: E402  (dlt is imported after its telemetry is switched off)

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # standins.servers: the SeaweedFS the tests use

import dlt  # noqa: F401  (before timing: a workflow's ingest job runs in the warm process, which has it)
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omicslake.catalog import attach_sql, connect, s3_secret
from omicslake.ingest import ingest
from omicslake.register import register
from omicslake.sources import s3
from standins.servers import S3Server


def objects(server: S3Server, n: int, rows: int) -> list[str]:
    def put(i: int) -> str:
        rng = np.random.default_rng(i)
        table = pa.table(
            {
                "id": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
                "gene": pa.array([f"G{j}" for j in rng.integers(0, 20_000, rows)]),
                "tpm": rng.random(rows),
                "sample": pa.array([f"S{i}"] * rows),
            }
        )
        out = io.BytesIO()
        pq.write_table(table, out)
        key = f"runs/part-{i:05d}.parquet"
        client.put_object(Bucket="private", Key=key, Body=out.getvalue())
        return f"s3://private/{key}"

    client = server.client()
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(put, range(n)))


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = S3Server(root / "seaweedfs")
    os.environ.update(AWS_ACCESS_KEY_ID=server.KEY_ID, AWS_SECRET_ACCESS_KEY=server.SECRET)
    try:
        urls = objects(server, args.objects, args.rows)
        entry = s3.datasets(
            [{"name": "runs", "bucket_url": "s3://private/runs/", "endpoint_url": server.endpoint,
              "register_in_place": True}]
        )["runs"]  # fmt: skip
        location = s3.location(entry)
        folder = root / "ours" / "staging" / "s3" / "runs"
        catalog, data = str(root / "ours" / "lake.ducklake"), str(root / "ours" / "data") + "/"
        settings = {"retries": 3, "backoff_seconds": 0.2, "timeout_seconds": 30}
        ingest_s = timed(lambda: ingest("s3", "runs", entry, folder / "manifest.json", settings))
        register_s = timed(
            lambda: register(folder / "manifest.json", catalog, data, folder / "receipt.json", [location])
        )
        ours = ingest_s + register_s

        def fresh(name: str):
            (root / name).mkdir()
            con = connect("httpfs")
            con.execute(s3_secret("bench", location))
            con.execute(attach_sql(str(root / name / "lake.ducklake"), str(root / name / "data") + "/"))
            con.execute("CREATE TABLE lake.t AS SELECT * FROM read_parquet(?) LIMIT 0", [urls[0]])
            return con

        con = fresh("bare")
        bare = timed(lambda: con.execute("CALL ducklake_add_data_files('lake', 't', ?)", [urls]))
        assert con.execute("SELECT count(*) FROM lake.t").fetchone()[0] == args.objects * args.rows
        con.close()
        con = fresh("glob")
        pattern = "s3://private/runs/part-*.parquet"
        glob = timed(lambda: con.execute("CALL ducklake_add_data_files('lake', 't', ?)", [pattern]))
        assert con.execute("SELECT count(*) FROM lake.t").fetchone()[0] == args.objects * args.rows
        con.close()
        con = fresh("insert")
        insert = timed(lambda: con.execute("INSERT INTO lake.t SELECT * FROM read_parquet(?)", [urls]))
        con.close()
        con = connect("httpfs")
        con.execute(s3_secret("bench", location))
        con.execute(attach_sql(catalog, data, read_only=True))
        assert con.execute("SELECT count(*) FROM lake.s3.runs").fetchone()[0] == args.objects * args.rows
        copied = sum(p.stat().st_size for p in Path(data).rglob("*.parquet") if "omicslake" not in p.parts)
        n = args.objects
        header = "objects\tours s\t(list+footers / register)\tours files/s\tbare s\tglob s\tINSERT s"
        print(header + "\tours/bare\tours/glob\tINSERT/ours\tbytes copied by ours")
        print(f"{n}\t{ours:.2f}\t({ingest_s:.2f} / {register_s:.2f})\t{n / ours:.0f}\t{bare:.2f}\t{glob:.2f}\t"
              f"{insert:.2f}\t{ours / bare:.2f}\t{ours / glob:.2f}\t{insert / ours:.2f}\t{copied}")  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
