"""Benchmark: the weekly rerun. N http datasets on a local HTTP server (ETag, Last-Modified).

Run by hand: .venv/bin/python bench/bench_rerun.py [--datasets 50] [--baseline REF] [--dag 500]

Runs the real workflow (`snakemake`, default profile, 2 cores) three times on the same config:
  first      every dataset new
  unchanged  nothing changed upstream (target: <= 10 s, 0 ingest/register jobs)
  one        one dataset changed (target: exactly its ingest and register)
and prints seconds, ingest/register jobs started and snapshots added. `--baseline REF` runs the
same three on a git ref of this repository (a temporary worktree) and prints the ratios.
`--dag N` times `snakemake -n` (building the DAG, nothing run) on an N-dataset config (target <= 5 s).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the omicslake package and tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py

from harness import REPO, checkout, snakemake  # noqa: E402

from omicslake.catalog import open_lake  # noqa: E402
from standins.servers import HTTPServer  # noqa: E402


def table(i: int, version: int = 1) -> bytes:
    rows = "".join(f"{i}-{r},{r * version},{r / 7:.4f}\n" for r in range(2000))
    return f"id,count,score\n{rows}".encode()


def config(root: Path, urls: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    lake = {"catalog": str(root / "lake" / "omicslake.ducklake"), "data_path": str(root / "lake" / "data")}
    sources = {"http": [{"name": f"t{i:04d}", "url": url, "format": "csv"} for i, url in enumerate(urls)]}
    settings = {"lake": lake, "staging": str(root / "staging"), "logs": str(root / "logs"), "sources": sources}
    path.write_text(yaml.safe_dump(settings))
    return path


def snapshots(root: Path) -> int:
    with open_lake(str(root / "lake" / "omicslake.ducklake"), str(root / "lake" / "data"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0]


def scenario(repo: Path, root: Path, n: int) -> dict:
    """first / unchanged / one changed, on a fresh lake: {run: (seconds, jobs, snapshots added)}."""
    server = HTTPServer()
    try:
        urls = [server.add(f"/t{i}.csv", table(i)) for i in range(n)]
        config(root, urls)
        out = {}
        for run in ("first", "unchanged", "one"):
            if run == "one":
                server.add("/t0.csv", table(0, version=2))
            before = snapshots(root) if run != "first" else 0
            done = snakemake(repo, root)
            out[run] = (done.seconds, done.started(), snapshots(root) - before)
            print(f"  {repo.name}: {run}: {done.seconds:.1f} s, {done.started()} jobs", file=sys.stderr)
        return out
    finally:
        server.stop()


def report(args, bench: Path) -> None:
    results = {"this checkout": scenario(REPO, bench / "ours", args.datasets)}
    if args.baseline:
        with checkout(args.baseline) as worktree:
            results[f"baseline {args.baseline}"] = scenario(worktree, bench / "base", args.datasets)
    print(f"{args.datasets} http datasets, 2 cores")
    print(f"{'code':<22} {'run':<10} {'seconds':>8} {'ingest+register jobs':>21} {'snapshots added':>16}")
    for code, runs in results.items():
        for run, (seconds, jobs, added) in runs.items():
            print(f"{code:<22} {run:<10} {seconds:>8.1f} {jobs:>21} {added:>16}")
    ours = results["this checkout"]
    if args.baseline:
        base = results[f"baseline {args.baseline}"]
        ratios = ", ".join(f"{run} {base[run][0] / ours[run][0]:.1f}x" for run in ours)
        print(f"baseline / this checkout (seconds): {ratios}")
    ok = ours["unchanged"][0] <= 10 and ours["unchanged"][1] == 0 and ours["one"][1] == 2
    print(f"unchanged rerun {ours['unchanged'][0]:.1f} s with {ours['unchanged'][1]} jobs (target <= 10 s, 0); "
          f"one changed: {ours['one'][1]} jobs (target 2): {'PASS' if ok else 'FAIL'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=50, help="datasets in the rerun scenario (0: skip)")
    parser.add_argument("--baseline", help="git ref to compare with, e.g. e35440c (forceall, before probes)")
    parser.add_argument("--dag", type=int, default=500, help="datasets in the `snakemake -n` config (0: skip)")
    args = parser.parse_args()
    bench = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-rerun-"))
    try:
        if args.datasets:
            report(args, bench)
        if args.dag:
            root = bench / "dag"
            config(root, [f"http://127.0.0.1:9/t{i}.csv" for i in range(args.dag)])
            dry = snakemake(REPO, root, "-n")
            assert "probe_http" in dry.output, dry.output[-2000:]
            print(f"snakemake -n, {args.dag} datasets: {dry.seconds:.1f} s (target <= 5 s)")
    finally:
        shutil.rmtree(bench, ignore_errors=True)


if __name__ == "__main__":
    main()
