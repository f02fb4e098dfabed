"""Benchmark: omicslake's zero-copy registration against loads that copy rows into DuckLake.

For each N, the same N Parquet files go into a fresh lake four ways:

  ours    omicslake.register.register(): check files against the manifest, rename them into the
          table folder, ducklake_add_data_files in one transaction; no row is read or rewritten
  glob    DuckLake's fastest call, the bound: the files already in the table's folder, one
          ducklake_add_data_files of a glob + COMMIT; no checks, provenance or receipt
  INSERT  INSERT INTO lake.main.t SELECT * FROM read_parquet([...]); rewrites every row
  dlt     a dlt pipeline, ducklake destination, Arrow items, loader_file_format="parquet"

Run by hand: .venv/bin/python bench/bench_register.py [--sizes 10 100 1000] [--rows 100000]
"""

# ruff: noqa: E402  (dlt is imported after its telemetry is switched off)

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # offline: dlt sends no anonymous telemetry

import dlt
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dlt.destinations.impl.ducklake.configuration import DuckLakeCredentials

from omicslake.catalog import attach_sql, connect, loadable
from omicslake.manifest import Manifest, Upstream, describe_file
from omicslake.register import register

OUT = Path(__file__).resolve().parent / "out"
SYMBOLS = pa.array([f"GENE{i}" for i in range(20_000)])
CHROMS = pa.array([f"chr{c}" for c in [*range(1, 23), "X", "Y"]])
TARGET_SPEEDUP, TARGET_FILES_PER_S, TARGET_OF_GLOB = 20, 500, 0.9


def write_sources(folder: Path, n: int, rows: int) -> list[Path]:
    """n Parquet files of `rows` rows x 6 columns (ids unique across files)."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        table = pa.table(
            {
                "id": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
                "symbol": SYMBOLS.take(rng.integers(0, len(SYMBOLS), rows)),
                "chrom": CHROMS.take(rng.integers(0, len(CHROMS), rows)),
                "position": rng.integers(1, 250_000_000, rows, dtype=np.int64),
                "value": rng.normal(size=rows),
                "significant": rng.random(rows) < 0.05,
            }
        )
        paths.append(folder / f"src.{i}.parquet")
        pq.write_table(table, paths[-1])
    return paths


def usage(root: Path) -> tuple[int, int]:
    """(all bytes, Parquet bytes of table data) of the files under root.

    Parquet under an `omicslake/` folder holds ours' provenance rows (DuckLake writes them to a
    file once they pass its inlining limit): new metadata, not a copy of data, so not counted.
    """
    total = parquet = 0
    for folder, _, names in os.walk(root):
        for name in names:
            size = os.path.getsize(os.path.join(folder, name))
            total += size
            data = name.endswith(".parquet") and "omicslake" not in Path(folder).parts
            parquet += size if data else 0
    return total, parquet


def measure(root: Path, run) -> tuple[float, int, int]:
    """Call run() (it returns the seconds it timed); return (seconds, bytes added, Parquet bytes added)."""
    os.sync()  # the files just written are on disk: no method pays for another's write-back
    before = usage(root)
    seconds = run()
    after = usage(root)
    return seconds, after[0] - before[0], after[1] - before[1]


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def count_rows(catalog: Path, data_path: Path, table: str) -> int:
    con = connect()
    try:
        con.execute(attach_sql(str(catalog), f"{data_path}/", alias="chk", read_only=True))
        return con.execute(f"SELECT count(*) FROM chk.{table}").fetchone()[0]
    finally:
        con.close()


def bench_ours(root: Path, sources: list[Path], rows: int) -> tuple[float, int, int]:
    """Stage files + manifest as the ingest rule does (not timed), then time the whole register() call."""
    load_id = f"bench{len(sources)}"
    workdir = root / "ours" / "staging" / "http" / "bench"
    bucket = workdir / "parquet" / "stage" / "bench"
    bucket.mkdir(parents=True)
    files = []
    for i, src in enumerate(sources):
        dest = bucket / f"{load_id}.{i}.parquet"  # unique names, as dlt's <load_id>.<file_id>.parquet
        shutil.copyfile(src, dest)
        files.append(describe_file(str(dest), "http.bench", load_id))
    Manifest(
        dataset="http.bench",
        source="http",
        status="changed",
        fingerprint=f"sha256:{load_id}-{time.time_ns()}",
        upstream=[Upstream(url="file:///bench")],
        config={"url": "file:///bench"},
        files=files,
        pipeline=None,
        load_id=load_id,
        workflow_version="bench",
    ).write(workdir / "manifest.json")
    catalog, data = root / "ours" / "lake" / "omicslake.ducklake", root / "ours" / "lake" / "data"
    result = measure(
        root, lambda: timed(register, workdir / "manifest.json", str(catalog), str(data), workdir / "receipt.json")
    )
    assert count_rows(catalog, data, "http.bench") == len(sources) * rows
    assert len(list((data / "http" / "bench").glob("*.parquet"))) == len(sources)  # moved, not copied
    return result


def bench_glob(root: Path, sources: list[Path], rows: int) -> tuple[float, int, int]:
    """DuckLake's own fastest registration, the bound for ours: the files already in the table's folder
    (copied there, not timed), one `ducklake_add_data_files` of a glob and the COMMIT; no checks,
    no provenance, no receipt."""
    catalog, data = root / "glob" / "lake.ducklake", root / "glob" / "data"
    folder = data / "main" / "t"
    folder.mkdir(parents=True)
    for i, src in enumerate(sources):
        shutil.copyfile(src, folder / f"{i}.parquet")

    def run() -> float:
        con = connect()
        try:
            con.execute(attach_sql(str(catalog), f"{data}/"))
            con.execute(f"CREATE TABLE lake.main.t AS SELECT * FROM read_parquet('{folder}/0.parquet') LIMIT 0")
            start = time.perf_counter()
            con.execute("BEGIN")
            add = f"'lake', 't', '{folder}/*.parquet', schema => 'main', hive_partitioning => false"  # as ours
            con.execute(f"CALL ducklake_add_data_files({add})")
            con.execute("COMMIT")
            return time.perf_counter() - start
        finally:
            con.close()

    result = measure(root, run)
    assert count_rows(catalog, data, "main.t") == len(sources) * rows
    return result


def bench_insert(root: Path, sources: list[Path], rows: int) -> tuple[float, int, int]:
    """Fresh lake, empty table from the files' schema, then time one INSERT ... read_parquet of all files."""
    catalog, data = root / "insert" / "lake.ducklake", root / "insert" / "data"
    data.mkdir(parents=True)
    files = "[" + ", ".join(f"'{f}'" for f in sources) + "]"

    def run() -> float:
        con = connect()
        try:
            con.execute(attach_sql(str(catalog), f"{data}/"))
            con.execute(f"CREATE TABLE lake.main.t AS SELECT * FROM read_parquet({files}) LIMIT 0")
            return timed(con.execute, f"INSERT INTO lake.main.t SELECT * FROM read_parquet({files})")
        finally:
            con.close()

    result = measure(root, run)
    assert count_rows(catalog, data, "main.t") == len(sources) * rows
    return result


def bench_dlt(root: Path, sources: list[Path], rows: int) -> tuple[float, int, int]:
    """dlt pipeline into its ducklake destination; time pipeline.run (extract + normalize + load)."""
    base = root / "dlt"
    credentials = DuckLakeCredentials(catalog=f"duckdb:///{base}/catalog.ducklake", storage=f"file://{base}/data")
    # dlt issues no INSTALL itself: its ATTACH 'ducklake:...' autoloads the extension, which connect() has
    # installed from the pip package into DuckDB's extension dir. Autoinstall off makes sure that if it were
    # missing, DuckDB fails instead of downloading it.
    credentials.global_config = {"autoinstall_known_extensions": False}

    @dlt.resource(name="items")
    def items():
        for path in sources:
            yield pq.read_table(path)

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{len(sources)}",
        pipelines_dir=str(base / "pipelines"),
        destination=dlt.destinations.ducklake(credentials=credentials),
        dataset_name="bench",
    )
    result = measure(root, lambda: timed(pipeline.run, items(), loader_file_format="parquet"))
    assert count_rows(base / "catalog.ducklake", base / "data", "bench.items") == len(sources) * rows
    return result


METHODS = {"ours": bench_ours, "glob": bench_glob, "INSERT": bench_insert, "dlt": bench_dlt}


def run_all(n: int, rows: int) -> tuple[int, dict[str, tuple[float, int, int]]]:
    """All methods on n fresh files in a temp dir that is removed afterwards; returns (input bytes, results)."""
    root = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=OUT))
    try:
        sources = write_sources(root / "src", n, rows)
        results = {}
        for name, bench in METHODS.items():
            print(f"  N={n}: {name} ...", file=sys.stderr, flush=True)
            results[name] = bench(root, sources, rows)
        return sum(p.stat().st_size for p in sources), results
    finally:
        shutil.rmtree(root)


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="numbers of files")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per file (default: %(default)s, about 2.7 MB)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    try:
        with duckdb.connect() as con:  # dlt's ATTACH autoloads ducklake from DuckDB's extension dir: put the
            con.install_extension(str(loadable("ducklake")))  # pip package's file there (never downloaded)
        print("warm-up (1 file, not reported) ...", file=sys.stderr, flush=True)
        run_all(1, args.rows)
        header = (
            f"{'N':>5} {'input':>9} | {'ours s':>7} {'files/s':>8} {'glob s':>7} {'INSERT s':>8} {'dlt s':>7} | "
            f"{'glob/ours':>9} "
            f"{'INS/ours':>8} {'dlt/ours':>8} | {'added: ours':>11} {'INSERT':>9} {'dlt':>9} | "
            f"{'parquet copied: ours':>20} {'INSERT':>9} {'dlt':>9}"
        )
        print(f"{args.rows} rows x 6 columns per file; seconds, bytes added under the temp root\n{header}")
        print("-" * len(header))
        for n in args.sizes:
            input_bytes, r = run_all(n, args.rows)
            ours, glob, ins, dl = r["ours"], r["glob"], r["INSERT"], r["dlt"]
            print(
                f"{n:>5} {size(input_bytes):>9} | {ours[0]:>7.3f} {n / ours[0]:>8.0f} {glob[0]:>7.3f} {ins[0]:>8.3f} "
                f"{dl[0]:>7.3f} | {glob[0] / ours[0]:>8.2f}x {ins[0] / ours[0]:>7.1f}x {dl[0] / ours[0]:>7.1f}x | "
                f"{size(ours[1]):>11} {size(ins[1]):>9} {size(dl[1]):>9} | "
                f"{size(ours[2]):>20} {size(ins[2]):>9} {size(dl[2]):>9}",
                flush=True,
            )
        fps, speedup, copied, bound = n / ours[0], dl[0] / ours[0], ours[2], glob[0] / ours[0]
        ok = {True: "PASS", False: "FAIL"}
        print(
            f"summary N={n}: glob/ours {bound:.2f}x (target >= {TARGET_OF_GLOB}: {ok[bound >= TARGET_OF_GLOB]}), "
            f"dlt/ours {speedup:.1f}x (target >= {TARGET_SPEEDUP}x: {ok[speedup >= TARGET_SPEEDUP]}), "
            f"INSERT/ours {ins[0] / ours[0]:.1f}x, ours {fps:.0f} files/s (target >= {TARGET_FILES_PER_S}: "
            f"{ok[fps >= TARGET_FILES_PER_S]}), Parquet bytes copied by ours {copied} (target 0: {ok[copied == 0]})"
        )
        print(f"total run time {time.perf_counter() - start:.1f} s")
    finally:
        with contextlib.suppress(OSError):
            OUT.rmdir()  # only if empty


if __name__ == "__main__":
    main()
