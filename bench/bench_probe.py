"""Benchmark: probing and planning a run of thousands of datasets, and `omicslake status` over them.

Run by hand: .venv/bin/python bench/bench_probe.py [--datasets 5000]

For N `http` datasets whose URLs are `file:` paths, then N URLs on a local HTTP server (ETag,
Last-Modified), on a fresh lake: starts the real workflow (`snakemake`, default profile, 2 cores)
and stops it as soon as the first ingest job starts. Prints

  probe s     the probe job's own seconds (Snakemake's record): every dataset asked upstream
  dag s       from the probe job's end to the first ingest job's start: Snakemake re-evaluating
              the DAG with N changed datasets (N ingest and N register jobs)
  status s    wall seconds of `omicslake status --json` over the N datasets (none loaded)

Targets (issue 18, 2 cores, N=5,000): probe of `file:` <= 10 s, of HTTP URLs <= 60 s; DAG <= 10 s;
status <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the omicslake package and tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py

from harness import BIN, REPO, job_times  # noqa: E402

from standins.servers import HTTPServer  # noqa: E402


def table(i: int) -> bytes:
    return ("id,count\n" + "".join(f"{i}-{r},{r}\n" for r in range(10))).encode()


def until_first_ingest(root: Path) -> float:
    """Run the workflow until its first ingest job starts, then stop it; return when that was."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(root)]
    cmd += ["--configfile", str(root / "config.yaml"), "--replace-workflow-config", "--cores", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{BIN}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if re.match(r"^(local)?rule ingest_http:$", line.strip()):
            started = time.time()
            os.killpg(process.pid, signal.SIGKILL)  # Snakemake, its jobs and registrar: nothing more to learn
            process.wait()
            return started
    raise RuntimeError("no ingest job started:\n" + "".join(output[-60:]))


def scenario(root: Path, urls: list[str]) -> dict:
    root.mkdir(parents=True)
    sources = {"http": [{"name": f"t{i:05d}", "url": url, "format": "csv"} for i, url in enumerate(urls)]}
    lake = {"catalog": str(root / "lake" / "omicslake.ducklake"), "data_path": str(root / "lake" / "data")}
    settings = {"lake": lake, "staging": str(root / "staging"), "logs": str(root / "logs"), "sources": sources}
    (root / "config.yaml").write_text(yaml.safe_dump(settings))
    first_ingest = until_first_ingest(root)
    ((start, end),) = job_times(root)["probe_http"]
    stamps = len(list((root / "staging" / "http").glob("*/stamp.json")))
    assert stamps == len(urls), f"{stamps} stamps written, not {len(urls)}"
    cmd = [sys.executable, "-m", "omicslake.cli", "status", "--json", "--configfile", str(root / "config.yaml")]
    clock = time.perf_counter()
    status = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    status_seconds = time.perf_counter() - clock
    assert status.returncode == 0, status.stderr[-2000:]
    assert len(json.loads(status.stdout)["datasets"]) == len(urls)
    return {"probe s": end - start, "dag s": first_ingest - end, "status s": status_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=5000)
    args = parser.parse_args()
    n = args.datasets
    bench = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-probe-"))
    server = HTTPServer()
    results = {}
    try:
        files = bench / "files"
        files.mkdir()
        for i in range(n):
            (files / f"t{i}.csv").write_bytes(table(i))
        results["file:"] = scenario(bench / "file", [(files / f"t{i}.csv").as_uri() for i in range(n)])
        urls = [server.add(f"/t{i}.csv", table(i)) for i in range(n)]
        results["http://"] = scenario(bench / "http", urls)
    finally:
        server.stop()
        time.sleep(1)  # Snakemake's jobs end after it
        shutil.rmtree(bench, ignore_errors=True)
    print(f"{n} http datasets, 2 cores")
    print(f"{'URLs':<8} " + " ".join(f"{k:>9}" for k in next(iter(results.values()))))
    for kind, row in results.items():
        print(f"{kind:<8} " + " ".join(f"{v:>9.2f}" for v in row.values()))


if __name__ == "__main__":
    main()
