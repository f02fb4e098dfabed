"""Benchmark: a GEO series matrix (gzip) into registered lake rows vs the pyarrow lower bound.

Run by hand: .venv/bin/python bench/bench_geo.py [--probes 20000] [--samples 200]

Both sides run in a fresh subprocess (so peak RSS is each one's own) on the same file:
  lower bound  pyarrow read_csv of the table section -> reshape to long -> write_parquet
  omicslake    the GEO source from a file:// mirror: parse (streaming) -> dlt -> Parquet -> register
Prints seconds, peak RSS and the ratio omicslake / lower bound (target <= 1.3).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

LOWER_BOUND = r"""
import sys, time, gzip, numpy as np, pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq
path, out = sys.argv[1], sys.argv[2]
start = time.perf_counter()
with gzip.open(path, "rt") as f:  # find the table: header lines end at !series_matrix_table_begin
    skip = next(i for i, line in enumerate(f) if line.startswith("!series_matrix_table_begin")) + 1
table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows=skip),
                       parse_options=pacsv.ParseOptions(delimiter="\t", invalid_row_handler=lambda row: "skip"),
                       convert_options=pacsv.ConvertOptions(null_values=["", "null"]))
# (the !series_matrix_table_end line is skipped as an invalid row)
probes, samples = table.column(0), table.column_names[1:]
n = table.num_rows
# ids dictionary-encoded, as omicslake writes them (plain strings would make the bound slower)
long = pa.table({
    "sample_id": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(samples), dtype=np.int32), n)),
                                                pa.array(samples)),
    "probe_id": pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(n, dtype=np.int32), len(samples))),
                                               probes.combine_chunks().cast(pa.string())),
    "value": pa.concat_arrays([table.column(s).combine_chunks().cast(pa.float64()) for s in samples]),
})
pq.write_table(long, out)
print(time.perf_counter() - start, long.num_rows)
"""

OMICSLAKE = r"""
import sys, time
from omicslake.ingest import ingest
from omicslake.register import register
from omicslake.sources import geo
mirror, root = sys.argv[1], sys.argv[2]
cfg = geo.datasets({"base_url": f"file://{mirror}", "series": ["GSE1"], "supplementary": "none"})["GSE1"]
folder = f"{root}/staging/geo/GSE1"
start = time.perf_counter()
manifest = ingest("geo", "GSE1", cfg, f"{folder}/manifest.json")
staged = time.perf_counter()
register(f"{folder}/manifest.json", f"{root}/lake/omicslake.ducklake", f"{root}/lake/data", f"{folder}/receipt.json")
done = time.perf_counter()
rows = sum(f.rows for f in manifest.files if f.table == "geo.expression")
print(done - start, rows, staged - start, done - staged)
"""


def write_matrix(path: Path, probes: int, samples: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    names = [f"GSM{100000 + i}" for i in range(samples)]
    quoted = lambda cells: "\t".join(f'"{c}"' for c in cells)  # noqa: E731
    head = [
        '!Series_title\t"Benchmark series"',
        '!Series_geo_accession\t"GSE1"',
        f'!Series_sample_id\t"{" ".join(names)}"',
        "!Sample_title\t" + quoted(names),
        "!Sample_geo_accession\t" + quoted(names),
        "!Sample_characteristics_ch1\t" + quoted(["tissue: kidney"] * samples),
        "!Sample_platform_id\t" + quoted(["GPL1"] * samples),
        "!series_matrix_table_begin",
        '"ID_REF"\t' + quoted(names),
    ]
    values = rng.uniform(5, 5000, size=(probes, samples))
    with gzip.open(path, "wt", compresslevel=6) as f:
        f.write("\n".join(head) + "\n")
        for p in range(probes):
            f.write(f'"{p}_at"\t' + "\t".join(f"{v:.3f}" for v in values[p]) + "\n")
        f.write("!series_matrix_table_end\n")


def run(script: str, *args: str) -> tuple[list[str], float]:
    """Run a script in a fresh interpreter; (its printed fields, its own peak RSS in MiB)."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"benchmark step failed with status {status}")
    return out.split(), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-geo-"))
    try:
        mirror = root / "mirror" / "geo"
        matrix = mirror / "series" / "GSEnnn" / "GSE1" / "matrix" / "GSE1_series_matrix.txt.gz"
        matrix.parent.mkdir(parents=True)
        start = time.perf_counter()
        write_matrix(matrix, args.probes, args.samples)
        size = matrix.stat().st_size
        print(
            f"matrix {args.probes} probes x {args.samples} samples, {size / 2**20:.1f} MiB gzip "
            f"(written in {time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        (low_s, low_rows), low_rss = run(LOWER_BOUND, str(matrix), str(root / "lower.parquet"))
        (ours_s, ours_rows, ingest_s, register_s), ours_rss = run(OMICSLAKE, str(mirror), str(root / "ours"))
        assert int(low_rows) == int(ours_rows) == args.probes * args.samples, (low_rows, ours_rows)
        result = {
            "values": args.probes * args.samples,
            "gzip_mib": round(size / 2**20, 1),
            "lower_bound_s": round(float(low_s), 2),
            "omicslake_s": round(float(ours_s), 2),
            "omicslake_ingest_s": round(float(ingest_s), 2),
            "omicslake_register_s": round(float(register_s), 2),
            "ratio": round(float(ours_s) / float(low_s), 2),
            "lower_bound_peak_rss_mib": round(low_rss),
            "omicslake_peak_rss_mib": round(ours_rss),
        }
        print(json.dumps(result, indent=2))
        print(
            f"omicslake / pyarrow lower bound = {result['ratio']}x (target <= 1.3), "
            f"peak RSS {result['omicslake_peak_rss_mib']} MiB vs {result['lower_bound_peak_rss_mib']} MiB"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
