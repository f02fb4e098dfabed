"""Benchmark: one cellxgene chunk job at 1x and 10x cells: seconds and peak RSS, vs the bound.

Run by hand: .venv/bin/python bench/bench_cellxgene.py [--cells 20000] [--buffer-mb 16]

Builds a census of pbmc68k_reduced cells repeated (standins/census.py; ~250 non-zeros a cell),
then runs, each in a fresh subprocess (peak RSS is each one's own), on the chunk of the first
N and 10 N cells:
  lower bound  the same axis query, `query.obs()` and `query.X("raw").tables()` straight into
               pyarrow.parquet writers (what any tool must at least do); again with the two
               columns the lake contract adds to every x row (query, census_version)
  omicslake    the chunk job: `ingest_chunk` (tiledbsoma -> Arrow -> dlt -> Parquet + manifest)
Prints seconds, peak RSS, the RSS ratio 10x / 1x (target <= 1.2: memory does not grow with the
chunk) and omicslake / lower bound time (target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_geo import run  # noqa: E402

LOWER_BOUND = r"""
import sys, time, cellxgene_census, tiledbsoma as soma, pyarrow.parquet as pq
from omicslake.reshape import constant
uri, first, last, buffer, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
labelled = sys.argv[6] == "labelled"  # with the contract's query and census_version columns
config = {"soma.init_buffer_bytes": buffer, "py.init_buffer_bytes": buffer, "sm.mem.total_budget": 2 * buffer}
columns = ["soma_joinid", "assay", "cell_type", "tissue", "disease", "donor_id", "dataset_id"]
start, rows = time.perf_counter(), 0
with cellxgene_census.open_soma(uri=uri, tiledb_config=config) as census:
    exp = census["census_data"]["homo_sapiens"]
    with exp.axis_query("RNA", obs_query=soma.AxisQuery(coords=(slice(first, last),))) as query:
        with pq.ParquetWriter(f"{out}.obs.parquet", exp.obs.schema.empty_table().select(columns).schema) as w:
            for t in query.obs(column_names=columns):
                w.write_table(t.select(columns))
        writer = None
        for t in query.X("raw").tables():
            if labelled:
                t = t.add_column(0, "census_version", constant("2025-11-08", t.num_rows))
                t = t.add_column(0, "query", constant("bench", t.num_rows))
            writer = writer or pq.ParquetWriter(f"{out}.x.parquet", t.schema)
            writer.write_table(t)
            rows += t.num_rows
        writer.close()
print(time.perf_counter() - start, rows)
"""

OMICSLAKE = r"""
import json, sys, time
from omicslake.ingest import ingest_chunk, plan_chunks
from omicslake.sources import cellxgene
uri, cells, buffer_mb, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
query = {"name": "bench", "organism": "homo_sapiens", "obs_value_filter": None, "var_value_filter": None,
         "obs_columns": ["assay", "cell_type", "tissue", "disease", "donor_id", "dataset_id"],
         "x_layer": "raw", "chunk_cells": cells}
entry = cellxgene.datasets({"census_version": "2025-11-08", "census_uri": uri, "tiledb_config": {},
                            "read_buffer_mb": buffer_mb, "queries": [query]})["bench"]
plan_chunks("cellxgene", "bench", entry, f"{root}/chunks.json")
start = time.perf_counter()
manifest = ingest_chunk("cellxgene", "bench", entry, 0, f"{root}/chunks.json", f"{root}/chunk/0/manifest.json")
chunk = json.load(open(f"{root}/chunks.json"))["chunks"][0]
x = sum(f.rows for f in manifest.files if f.table == "cellxgene.x")
print(time.perf_counter() - start, x, chunk["first"], chunk["last"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=20_000, help="cells of the 1x chunk")
    parser.add_argument("--buffer-mb", type=int, default=16, help="read_buffer_mb (TileDB-SOMA read buffers)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-cellxgene-"))
    try:
        start = time.perf_counter()
        copies = -(-10 * args.cells // 700)
        uri = str(root / "census")  # built in a subprocess: a child's peak RSS counts its parent's at fork
        build = f"from standins.census import build_census; build_census({uri!r}, copies={copies})"
        subprocess.run([sys.executable, "-c", build], check=True, cwd=REPO)
        print(f"census: {copies * 700} cells, built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        result = {"buffer_mb": args.buffer_mb}
        for scale in (1, 10):
            cells = scale * args.cells
            work = root / f"ours-{scale}"
            (ours_s, x_rows, first, last), ours_rss = run(OMICSLAKE, uri, str(cells), str(args.buffer_mb), str(work))
            buffer = str(args.buffer_mb * 2**20)
            (low_s, low_rows), low_rss = run(LOWER_BOUND, uri, first, last, buffer, str(root / "low"), "bare")
            (lab_s, lab_rows), _ = run(LOWER_BOUND, uri, first, last, buffer, str(root / "low"), "labelled")
            assert int(x_rows) == int(low_rows) == int(lab_rows), (x_rows, low_rows, lab_rows)
            result[f"{scale}x"] = {
                "cells": cells,
                "x_rows": int(x_rows),
                "omicslake_s": round(float(ours_s), 2),
                "lower_bound_s": round(float(low_s), 2),
                "time_ratio": round(float(ours_s) / float(low_s), 2),
                "lower_bound_with_query_columns_s": round(float(lab_s), 2),
                "time_ratio_with_query_columns": round(float(ours_s) / float(lab_s), 2),
                "omicslake_peak_rss_mib": round(ours_rss),
                "lower_bound_peak_rss_mib": round(low_rss),
            }
            print(json.dumps(result[f"{scale}x"]), file=sys.stderr)
            shutil.rmtree(work)
        rss_ratio = result["10x"]["omicslake_peak_rss_mib"] / result["1x"]["omicslake_peak_rss_mib"]
        result["rss_ratio_10x_1x"] = round(rss_ratio, 2)
        print(json.dumps(result, indent=2))
        print(
            f"peak RSS 10x / 1x = {result['rss_ratio_10x_1x']} (target <= 1.2); omicslake / lower bound time = "
            f"{result['1x']['time_ratio']} (1x), {result['10x']['time_ratio']} (10x) (target <= 1.5)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
