"""Benchmark: the fixed cost of a cluster job's Snakemake process, against the config's size.

Run by hand: .venv/bin/python bench/bench_job_cost.py [--sizes 100 5000] [--repeats 5]

A SLURM job (and each member of a group job) is a new Snakemake process on the node: it parses the
Snakefile, loads the run's config and builds the DAG of its one job. For configs of N `http`
datasets it times that process (`--mode remote --target-jobs ingest_http:… -n`: everything but the
job's own script) two ways, median of `--repeats`:

  checked JSON   what jobs get now: the config the main process checked, as JSON
                 (`hand_checked_config_to_jobs` in rules/common.smk)
  user YAML      the baseline, what jobs got before: the user's YAML, loaded and checked again

and prints wall and CPU seconds of each, the YAML/JSON ratio, and the growth from the smallest N
to the largest (a job's cost must not depend on N).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def job_process(root: Path, configfile: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one job's Snakemake process, as the SLURM executor starts it."""
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(root)]
    cmd += ["--target-jobs", "ingest_http:source=http,name=d0", "--allowed-rules", "ingest_http"]
    cmd += ["--configfiles", str(configfile), "--cores", "1", "--force", "--nolock", "--mode", "remote", "-n"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(n: int, workdir: Path, repeats: int) -> dict[str, tuple[float, float]]:
    root = workdir / f"n{n}"
    (root / "staging" / "http" / "d0").mkdir(parents=True)
    (root / "staging" / "http" / "d0" / "stamp.json").write_text("{}")  # the job's input
    config = {
        "lake": {"catalog": str(root / "lake" / "lake.ducklake"), "data_path": str(root / "lake" / "data")},
        "staging": str(root / "staging"),
        "logs": str(root / "logs"),
        "sources": {"http": [{"name": f"d{i}", "url": f"https://example.org/d{i}.csv"} for i in range(n)]},
    }
    user_yaml = root / "config.yaml"
    user_yaml.write_text(yaml.safe_dump(config))
    # the main process: checks the config and writes what its jobs load (a dry run plans nothing else)
    main = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(root)]
    main += ["--configfile", str(user_yaml), "--replace-workflow-config", "--cores", "1", "-n"]
    subprocess.run(main, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    (checked,) = (root / ".snakemake" / "omicslake").glob("config-*.json")
    found = {}
    for label, configfile in (("checked JSON", checked), ("user YAML", user_yaml)):
        runs = [job_process(root, configfile) for _ in range(repeats)]
        found[label] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_job_cost.") as tmp:
        results = {n: measure(n, Path(tmp), args.repeats) for n in args.sizes}
    print(f"{'datasets':>9} {'config given to the job':<24} {'wall s':>7} {'CPU s':>7}")
    for n, found in results.items():
        for label, (wall, cpu) in found.items():
            print(f"{n:>9} {label:<24} {wall:>7.2f} {cpu:>7.2f}")
        print(f"{'':>9} {'YAML / JSON':<24} {found['user YAML'][0] / found['checked JSON'][0]:>7.2f}x")
    low, high = min(results), max(results)
    for label in ("checked JSON", "user YAML"):
        growth = results[high][label][1] / results[low][label][1]
        print(f"{label}: CPU at {high} datasets / at {low}: {growth:.2f}x")


if __name__ == "__main__":
    main()
