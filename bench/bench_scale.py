"""Benchmark: a run of thousands of datasets. N tiny `http` datasets plus GEO series, the real workflow.

Run by hand: .venv/bin/python bench/bench_scale.py [--sizes 100 1000 5000] [--geo 50] [--urls http|file]
             [--baseline 330d010] [--baseline-sizes 100 1000]

For each N, on a fresh lake (2 cores, the default profile): N CSV tables of 100 rows on a local
HTTP server (ETag, Last-Modified; or `file:` paths with `--urls file`) and `--geo` series matrices
(20 samples x 200 probes) in a `file:` GEO mirror, loaded by one `snakemake` run; then the same
run again with nothing changed.
Prints per N and code version:

  first s        wall seconds of the first load
  ingest s       the ingest jobs' span (first start to last end)
  ingest job s   median seconds of an ingest job: a job's fixed cost (a tiny load is all fixed cost)
  register s     seconds during which a register job ran (registration is one writer at a time), datasets/s
  rerun s        wall seconds of the unchanged rerun (probes only)
  status s       wall seconds of `omicslake status --json` on the loaded lake
  smk cpu s      CPU seconds of the Snakemake process itself (scheduling, bookkeeping)

and the growth exponent of each figure between consecutive N (1.0: linear). `--baseline REF`
runs the same at `--baseline-sizes` on a git ref (a temporary worktree) and prints ours/baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the omicslake package and tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py

from harness import REPO, checkout, covered_seconds, job_times, median_seconds, snakemake  # noqa: E402

from standins import geo_tree  # noqa: E402
from standins.servers import HTTPServer  # noqa: E402

ROWS = 100
GEO_SAMPLES, GEO_PROBES = 20, 200


def table(i: int) -> bytes:
    return ("id,count,score\n" + "".join(f"{i}-{r},{r},{r / 7:.4f}\n" for r in range(ROWS))).encode()


def geo_mirror(root: Path, series: int) -> list[str]:
    """`series` series matrices on one platform, shaped like NCBI's (standins/geo_tree.py)."""
    accessions = [f"GSE{90000 + i}" for i in range(series)]
    for i, accession in enumerate(accessions):
        samples = [f"GSM{900000 + i * GEO_SAMPLES + s}" for s in range(GEO_SAMPLES)]
        text = geo_tree.matrix_text(accession, "GPL97", samples, GEO_PROBES, seed=i)
        geo_tree.write_gz(root / f"series/GSE{accession[3:-3]}nnn/{accession}/matrix/"
                          f"{accession}_series_matrix.txt.gz", text)  # fmt: skip
    return accessions


def scenario(repo: Path, root: Path, n: int, geo: int, server: HTTPServer | None) -> dict:
    root.mkdir(parents=True)
    if server:
        urls = [server.add(f"/{root.name}/t{i}.csv", table(i)) for i in range(n)]
    else:
        (root / "upstream").mkdir()
        for i in range(n):
            (root / "upstream" / f"t{i}.csv").write_bytes(table(i))
        urls = [(root / "upstream" / f"t{i}.csv").as_uri() for i in range(n)]
    sources: dict = {"http": [{"name": f"t{i:05d}", "url": url, "format": "csv"} for i, url in enumerate(urls)]}
    if geo:
        sources["geo"] = {"base_url": (root / "mirror").as_uri(), "series": geo_mirror(root / "mirror", geo)}
    lake = {"catalog": str(root / "lake" / "omicslake.ducklake"), "data_path": str(root / "lake" / "data")}
    settings = {"lake": lake, "staging": str(root / "staging"), "logs": str(root / "logs"), "sources": sources}
    (root / "config.yaml").write_text(yaml.safe_dump(settings))
    first = snakemake(repo, root)
    times = job_times(root)
    ingest = [span for rule, spans in times.items() if rule.startswith("ingest") for span in spans]
    register = times.get("register", [])
    assert len(register) == n + geo, f"{len(register)} registrations, not {n + geo}"
    rerun = snakemake(repo, root)
    assert rerun.started() == 0, rerun.output[-3000:]
    status = status_seconds(repo, root, n + geo)
    busy = covered_seconds(register)
    result = {
        "first s": first.seconds,
        "ingest s": max(e for _, e in ingest) - min(s for s, _ in ingest),
        "ingest job s": median_seconds(ingest),
        "register s": busy,
        "datasets/s": (n + geo) / busy,
        "rerun s": rerun.seconds,
        "status s": status,
        "smk cpu s": first.cpu,
    }
    print(f"  {repo.name} N={n}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return result


def status_seconds(repo: Path, root: Path, datasets: int) -> float:
    """Wall seconds of `omicslake status --json` on the loaded lake (it lists every dataset)."""
    cmd = [sys.executable, "-m", "omicslake.cli", "status", "--json", "--configfile", str(root / "config.yaml")]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    states = [d["state"] for d in json.loads(result.stdout)["datasets"]]
    assert states == ["registered"] * datasets, f"{len(states)} datasets, {set(states)}"
    return seconds


def growth(rows: dict[int, dict]) -> list[str]:
    """The exponent k of figure ~ N^k between consecutive sizes."""
    lines, sizes = [], sorted(rows)
    for a, b in zip(sizes, sizes[1:], strict=False):
        exps = {k: math.log(rows[b][k] / rows[a][k]) / math.log(b / a) for k in rows[a] if k != "datasets/s"}
        lines.append(f"growth {a} -> {b}: " + ", ".join(f"{k} N^{v:.2f}" for k, v in exps.items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--geo", type=int, default=50, help="GEO series beside the http datasets")
    parser.add_argument("--urls", choices=["http", "file"], default="http", help="where the tiny tables are")
    parser.add_argument("--baseline", help="git ref to compare with, e.g. 330d010")
    parser.add_argument("--baseline-sizes", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    bench = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-scale-"))
    server = HTTPServer() if args.urls == "http" else None
    results: dict[str, dict[int, dict]] = {}
    try:
        for label, ref, sizes in [("this checkout", None, args.sizes), (f"baseline {args.baseline}", args.baseline,
                                                                       args.baseline_sizes)]:  # fmt: skip
            if label != "this checkout" and not ref:
                continue
            with checkout(ref) as repo:
                results[label] = {n: scenario(repo, bench / f"{label[:4]}{n}", n, args.geo, server) for n in sizes}
    finally:
        if server:
            server.stop()
        shutil.rmtree(bench, ignore_errors=True)
    keys = list(next(iter(results["this checkout"].values())))
    print(f"tiny http datasets ({ROWS} rows, {args.urls} URLs) + {args.geo} GEO series "
          f"({GEO_SAMPLES} x {GEO_PROBES}), 2 cores")  # fmt: skip
    print(f"{'code':<22} {'N':>6} " + " ".join(f"{k:>13}" for k in keys))
    for label, rows in results.items():
        for n, row in rows.items():
            print(f"{label:<22} {n:>6} " + " ".join(f"{row[k]:>13.2f}" for k in keys))
        print("\n".join(growth(rows)))
    if args.baseline:
        base, ours = results[f"baseline {args.baseline}"], results["this checkout"]
        for n in sorted(set(base) & set(ours)):
            print(f"ours / baseline at N={n}: " + ", ".join(f"{k} {ours[n][k] / base[n][k]:.2f}x" for k in keys))


if __name__ == "__main__":
    main()
