"""Jobs run in forks of a warm process (omicslake/warm.py): what a job's own process would do, and
no child outliving its job."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # warm processes and Snakemake runs: not in `make test-fast`

REPO = Path(__file__).resolve().parent.parent

# A job script as Snakemake runs one: hands itself off first, then does its work.
SCRIPT = f"""
import os, signal, sys, time
sys.path.insert(0, {str(REPO)!r})
from omicslake.warm import hand_off
hand_off()
import dlt  # imported by the warm process already
print("ran", os.getpid(), os.getppid(), os.getcwd(), os.environ.get("JOB_VALUE"), sys.argv[1:], flush=True)
print("to stderr", file=sys.stderr, flush=True)
action = sys.argv[1]
if action == "fail":
    sys.exit(3)
if action == "raise":
    raise ValueError("a bug")
if action == "wait":
    def ended(signum, frame):
        open("ended-" + str(signum), "w").close()
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, ended)
    open("started", "w").close()
    time.sleep(60)
"""


@pytest.fixture
def job(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    started = []

    def run(*args, env=None, wait=True):
        process = subprocess.Popen(
            [sys.executable, "job.py", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        started.append(process)
        if wait:
            process.out, process.err = process.communicate(timeout=120)
        return process

    yield run
    for process in started:
        process.kill()
    stop_servers(tmp_path)


def servers(folder: Path) -> list[int]:
    """The warm processes serving jobs in `folder` (by their working directory), not their forks."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if b"omicslake.warm" in (proc / "cmdline").read_bytes() and os.readlink(proc / "cwd") == str(folder):
                found[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return [pid for pid, parent in found.items() if parent not in found]


def stop_servers(folder: Path) -> None:
    for pid in servers(folder):
        os.kill(pid, signal.SIGKILL)


def test_a_job_runs_in_a_fork_of_the_warm_process_with_its_own_arguments_environment_and_streams(job, tmp_path):
    first = job("ok", env={"JOB_VALUE": "one"})
    second = job("ok", env={"JOB_VALUE": "two"})
    assert first.returncode == second.returncode == 0, first.err + second.err
    (server,) = servers(tmp_path)  # one for both
    for process, value in [(first, "one"), (second, "two")]:
        _, pid, parent, cwd, seen, args = process.out.split(maxsplit=5)
        assert (int(parent), cwd, seen, args.strip()) == (server, str(tmp_path), value, "['ok']")
        assert int(pid) != process.pid  # the work ran in the fork, its output reached the job's streams
        assert process.err.strip() == "to stderr"


def test_a_job_exits_with_its_scripts_status(job):
    assert job("fail").returncode == 3
    crashed = job("raise")
    assert crashed.returncode == 1
    assert "ValueError: a bug" in crashed.err


def test_a_job_signalled_passes_the_signal_to_its_fork(job, tmp_path):
    job("ok")  # the server is up
    process = job("wait", wait=False)
    wait_for(tmp_path / "started")
    process.terminate()  # SLURM's time limit, Snakemake cancelling
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert (tmp_path / f"ended-{signal.SIGTERM}").exists()  # the fork ran its handler


def test_a_job_killed_outright_takes_its_fork_with_it(job, tmp_path):
    job("ok")
    process = job("wait", wait=False)
    wait_for(tmp_path / "started")
    process.kill()  # no handler runs in the job: the warm process notices the closed connection
    wait_for(tmp_path / f"ended-{signal.SIGTERM}")


def test_a_job_whose_warm_process_dies_fails_with_one_line_and_ends_its_fork(job, tmp_path):
    job("ok")
    process = job("wait", wait=False)
    wait_for(tmp_path / "started")
    (server,) = servers(tmp_path)
    os.kill(server, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    assert "the warm process running this job died" in process.stderr.read()
    wait_for(tmp_path / f"ended-{signal.SIGTERM}")


def test_a_job_the_warm_process_ends_without_taking_runs_in_its_own_process(job, tmp_path):
    """A server that ends idle while a job waits in its queue (as between two runs) closes the
    job's connection unanswered: the job runs all the same, once."""
    job("ok")
    (server,) = servers(tmp_path)
    os.kill(server, signal.SIGSTOP)  # takes no job from now on; the kernel still queues connections
    process = job("ok", wait=False)
    time.sleep(1)  # the job connected and sent its request
    assert process.poll() is None
    os.kill(server, signal.SIGKILL)  # ends with the job still queued
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.count("ran") == 1
    assert int(out.split()[1]) == process.pid


def test_without_the_warm_process_a_job_runs_in_its_own_process(job, tmp_path):
    process = job("ok", env={"OMICSLAKE_WARM": "0"})
    assert process.returncode == 0
    assert int(process.out.split()[1]) == process.pid
    assert not servers(tmp_path)


def test_the_warm_process_ends_when_idle(job, tmp_path):
    from omicslake import warm

    job("ok")
    (server,) = servers(tmp_path)
    deadline = time.monotonic() + warm.IDLE_SECONDS + 20
    while servers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not servers(tmp_path)


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
