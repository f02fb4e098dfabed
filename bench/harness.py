"""What the workflow benchmarks share: run the real workflow, time its jobs, check out a baseline."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Runs snakemake in this process and prints the CPU seconds this process used (Snakemake's own
# scheduling and bookkeeping; jobs' processes are children and not counted) as its last line.
SNAKEMAKE_WITH_CPU = (
    "import atexit, resource, sys\n"
    "def cpu():\n"
    "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    print(f'snakemake-cpu {u.ru_utime + u.ru_stime:.3f}', file=sys.stderr)\n"
    "atexit.register(cpu)\n"
    "from snakemake.cli import main\n"
    "sys.argv[0] = 'snakemake'\n"
    "main()\n"
)


class Run:
    """One snakemake run: wall seconds, Snakemake's own CPU seconds, its output, jobs started."""

    def __init__(self, seconds: float, cpu: float, output: str):
        self.seconds, self.cpu, self.output = seconds, cpu, output

    def started(self, pattern: str = r"ingest\w*|register") -> int:
        return len(re.findall(rf"^(?:local)?rule (?:{pattern}):$", self.output, re.M))


def snakemake(repo: Path, root: Path, *args: str, check: bool = True) -> Run:
    """Run the workflow of `repo` on `root/config.yaml` (its default profile, 2 cores)."""
    cmd = [str(BIN / "python"), "-c", SNAKEMAKE_WITH_CPU, "--snakefile", str(repo / "Snakefile")]
    cmd += ["--directory", str(root), "--configfile", str(root / "config.yaml"), "--replace-workflow-config"]
    cmd += ["--cores", "2", *args]
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{BIN}:{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if check and result.returncode != 0:
        raise RuntimeError(f"snakemake failed:\n{result.stderr[-3000:]}")
    cpu = re.findall(r"^snakemake-cpu (\S+)$", result.stderr, re.M)
    return Run(seconds, float(cpu[-1]) if cpu else float("nan"), result.stdout + result.stderr)


def job_times(root: Path) -> dict[str, list[tuple[float, float]]]:
    """{rule: [(start, end)]} of every job Snakemake recorded in `root` (its metadata per output)."""
    times: dict[str, list[tuple[float, float]]] = {}
    for path in (root / ".snakemake" / "metadata").glob("*"):
        with contextlib.suppress(ValueError, OSError, KeyError):
            record = json.loads(path.read_text())
            if record.get("starttime") and record.get("endtime"):
                times.setdefault(record["rule"], []).append((record["starttime"], record["endtime"]))
    return times


def covered_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of `spans` was running."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def median_seconds(spans: list[tuple[float, float]]) -> float:
    return statistics.median(end - start for start, end in spans) if spans else float("nan")


@contextlib.contextmanager
def checkout(ref: str | None) -> Iterator[Path]:
    """This repository (ref None), or `ref` of it in a temporary worktree."""
    if ref is None:
        yield REPO
        return
    folder = Path(tempfile.mkdtemp(dir=REPO / "bench", prefix="out-baseline-")) / "repo"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), ref], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=False)
        subprocess.run(["rm", "-rf", str(folder.parent)], check=False)
