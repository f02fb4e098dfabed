"""Benchmark: registration throughput, loads per second, the run's registrar against its bounds.

Run by hand: .venv/bin/python bench/bench_registrar.py [--loads 1000] [--processes 30]

Stages N one-file loads (100 rows each, one table per dataset, as `http` datasets are; manifests
as ingest writes them, not timed), then registers them four ways, each in a fresh lake (a reload
into the lake of its first pass):

  registrar new     the run's registrar (`omicslake.registrar`), every load creating its table
  registrar reload  the same registrar, a second version of every load (existing tables, old rows retired)
  process per load  `register()` in a process of its own per load (what 330d010's register jobs
                    did, without Snakemake's share), on the first `--processes` loads
  DuckLake bare     one connection: CREATE TABLE + ducklake_add_data_files + COMMIT per load (no
                    checks, no provenance, no receipt): the lower bound
  ... reload        the same connection, a second version of every load: DELETE the table's rows +
                    ducklake_add_data_files + COMMIT (the lower bound of `registrar reload`)

and prints loads/s of each and the registrar's per-load milliseconds in the first and last tenth
of the loads (how the cost grows with the catalog).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the omicslake package

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from omicslake import registrar  # noqa: E402
from omicslake.catalog import attach_sql, connect  # noqa: E402
from omicslake.manifest import Manifest, Upstream, describe_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ROWS = 100


def stage(staging: Path, n: int, version: int) -> list[Path]:
    """N staged loads (dataset http.t<i>, one Parquet file each); their manifests."""
    manifests = []
    for i in range(n):
        folder = staging / "http" / f"t{i:05d}"
        bucket = folder / "parquet" / "stage" / f"t{i:05d}"
        bucket.mkdir(parents=True, exist_ok=True)
        load_id = f"{1_700_000_000 + version}.{i:06d}"
        path = bucket / f"{load_id}.0.parquet"
        table = pa.table({"id": pa.array(range(ROWS)), "value": pa.array([version * 0.5] * ROWS)})
        pq.write_table(table, path)
        staged = describe_file(str(path), f"http.t{i:05d}", load_id)
        Manifest(
            dataset=f"http.t{i:05d}", source="http", status="changed", fingerprint=f"sha256:{version}-{i}",
            upstream=[Upstream(url=f"file:///t{i}.csv", size=version)], files=[staged],
            config={"url": f"file:///t{i}.csv"}, pipeline=None, load_id=load_id, workflow_version="bench",
        ).write(folder / "manifest.json")  # fmt: skip
        manifests.append(folder / "manifest.json")
    return manifests


def request(manifest: Path, lake: Path) -> dict:
    folder = manifest.parent
    return {
        "catalog": str(lake / "omicslake.ducklake"), "data_path": str(lake / "data"), "s3": [],
        "dataset": f"http.{folder.name}", "manifest": str(manifest), "receipt": str(folder / "receipt.json"),
        "log": str(folder / "register.log"), "folder": str(folder), "step": "register",
    }  # fmt: skip


def through_registrar(manifests: list[Path], lake: Path) -> list[float]:
    client, seconds = registrar.Registrar(), []
    try:
        for manifest in manifests:
            start = time.perf_counter()
            client.register(request(manifest, lake))
            seconds.append(time.perf_counter() - start)
    finally:
        client.close()
    return seconds


def process_per_load(manifests: list[Path], lake: Path) -> list[float]:
    code = "import sys; from omicslake.register import register; register(*sys.argv[1:5])"
    seconds = []
    for manifest in manifests:
        r = request(manifest, lake)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, r["manifest"], r["catalog"], r["data_path"], r["receipt"]],
                       check=True, cwd=REPO, capture_output=True)  # fmt: skip
        seconds.append(time.perf_counter() - start)
    return seconds


def bare(manifests: list[Path], lake: Path, reload: bool = False) -> list[float]:
    """One snapshot per load, nothing else: a new table each, or (`reload`) the table's old rows
    deleted and the new file added."""
    con, seconds = connect(), []
    (lake / "data").mkdir(parents=True, exist_ok=True)
    con.execute(attach_sql(str(lake / "omicslake.ducklake"), str(lake / "data") + "/"))
    con.execute("CALL lake.set_option('auto_compact', false)")
    for manifest in manifests:
        staged = Manifest.read(manifest).files[0]
        start = time.perf_counter()
        con.execute("BEGIN")
        if reload:
            con.execute(f"DELETE FROM lake.{manifest.parent.name}")
        else:
            con.execute(f"CREATE TABLE lake.{manifest.parent.name} (id BIGINT, value DOUBLE)")
        con.execute("CALL ducklake_add_data_files('lake', ?, ?)", [manifest.parent.name, staged.path])
        con.execute("COMMIT")
        seconds.append(time.perf_counter() - start)
    con.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=30, help="loads registered a process each (slow)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-registrar-"))
    results = {}
    try:
        new = stage(root / "a", args.loads, 1)
        results["registrar new"] = through_registrar(new, root / "a" / "lake")
        results["registrar reload"] = through_registrar(stage(root / "a", args.loads, 2), root / "a" / "lake")
        results["process per load"] = process_per_load(stage(root / "b", args.processes, 1), root / "b" / "lake")
        results["DuckLake bare"] = bare(stage(root / "c", args.loads, 1), root / "c" / "lake")
        results["DuckLake bare reload"] = bare(stage(root / "c", args.loads, 2), root / "c" / "lake", reload=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.loads} one-file loads ({ROWS} rows), a table each; 2 cores")
    print(f"{'method':<20} {'loads':>6} {'loads/s':>8} {'ms/load first 10%':>18} {'ms/load last 10%':>17}")
    for method, seconds in results.items():
        tenth = max(1, len(seconds) // 10)
        first, last = (1000 * sum(part) / len(part) for part in (seconds[:tenth], seconds[-tenth:]))
        rate = len(seconds) / sum(seconds)
        print(f"{method:<20} {len(seconds):>6} {rate:>8.1f} {first:>18.0f} {last:>17.0f}")
    ours = len(results["registrar new"]) / sum(results["registrar new"])
    per_process = len(results["process per load"]) / sum(results["process per load"])
    print(f"registrar new / process per load: {ours / per_process:.1f}x loads/s")


if __name__ == "__main__":
    main()
