"""The workflow on a real single-node SLURM cluster: `snakemake --profile slurm` as users type it
(after the README's one-time `make profile`), and `--profile profiles/slurm`.

The time-limit case spends most of its time waiting for SLURM (the 1-minute limit, slurmctld's
30-second time-limit sweep, the executor's growing status-check interval), so it starts in the
background as soon as the cluster is up (`time_limit_run`) and the other cases run meanwhile. Each
case counts only the jobs of its own snakemake run: the executor names every job it submits with
its run ID (it finds them by that name itself, `squeue --name`).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from standins.servers import HTTPServer
from tests.conftest import REPO, Lake, demo_http_config, run_snakemake, workflow_config
from tests.slurm.cluster import SlurmCluster, available

pytestmark = pytest.mark.slow

TIME_LIMIT_TEST = "test_a_job_slurm_kills_for_time_comes_back_with_more_and_others_are_registered"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not available():
        if os.environ.get("CI"):
            pytest.fail("SLURM is not installed: .ci/run installs slurm-wlm and munge")
        pytest.skip("SLURM (slurm-wlm, munge) not installed on this machine")
    # Room for the time-limit case's jobs beside the other cases' (slurm.conf's config_overrides: the node
    # is what slurm.conf says; jobs are not confined to their CPUs or memory, task/none)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=8, memory_mb=16000).start()
    profiles = tmp_path_factory.mktemp("xdg")  # the user's ~/.config, for `make profile`
    subprocess.run(["make", "-s", "-C", str(REPO), "profile", f"XDG_CONFIG_HOME={profiles}"], check=True)
    cluster.env = {**cluster.env, "XDG_CONFIG_HOME": str(profiles)}
    yield cluster
    cluster.stop()


def run_id(result: subprocess.CompletedProcess) -> str:
    """The SLURM run ID of a snakemake run: the name of every job it submitted."""
    ids = re.findall(r"^SLURM run ID: (\S+)$", result.stderr, re.M)
    assert len(ids) == 1, result.stderr[-3000:]
    return ids[0]


def run_jobs(cluster, result: subprocess.CompletedProcess) -> list[dict]:
    """The jobs slurmctld still knows (MinJobAge=300) that this snakemake run submitted."""
    return [job for job in cluster.jobs() if job["name"] == run_id(result)]


@pytest.fixture(scope="module", autouse=True)
def time_limit_run(request, cluster, tmp_path_factory):
    """The time-limit case's workflow run, in the background from the module's first case on (when
    that case is selected): (its result, squeue's view of its jobs taken as the run ended)."""
    if not any(item.originalname == TIME_LIMIT_TEST for item in request.session.items):
        yield None
        return
    server, workdir = HTTPServer(), tmp_path_factory.mktemp("time_limit")
    slow = server.add("/slow.csv", b"a,b\n1,x\n2,y\n", stall=[0, 150])  # the probe's GET, then the job's
    steady = server.add("/steady.csv", b"c\n3\n")
    sources = {"http": [{"name": "slow", "url": slow}, {"name": "steady", "url": steady}]}
    config = workflow_config(workdir, sources, retries=0, timeout_seconds=300)

    def run():
        result = slurm_run(workdir, config, cluster, "--set-resources", "ingest_http:runtime=attempt*1")
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i|%j|%k|%T|%m|%l"],
            env=cluster.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return workdir, result, out

    try:
        with ThreadPoolExecutor(1) as pool:  # leaving it waits for the run: the cluster outlives it
            yield pool.submit(run)
    finally:
        server.stop()


def slurm_run(workdir, config, cluster, *extra, profile: str = "slurm"):
    """The README's cluster command, plus what a cluster without slurmdbd needs."""
    args = [
        *extra,
        "--profile",
        profile,
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-no-account",
    ]
    return run_snakemake(workdir, config, *args, env=cluster.env, timeout=600)


def test_workflow_runs_its_ingest_jobs_on_slurm(tmp_path, cluster):
    shutil.copytree(REPO / "demo" / "data", tmp_path / "demo" / "data")
    config = demo_http_config()
    result = slurm_run(tmp_path, config, cluster, "--slurm-keep-successful-logs")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = run_jobs(cluster, result)
    # the three datasets' ingest jobs in one submission (group `datasets`); probe and registration
    # ran on the submit host
    assert [(job["comment"], job["state"]) for job in jobs] == [("rule_datasets_ingest_http", "COMPLETED")]
    lake = Lake(tmp_path / "results" / "demo")  # the demo config's lake
    assert lake.query("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)") == [(30,)]
    assert (tmp_path / "results" / "demo" / "logs" / "ingest" / "http" / "samples.log").exists()
    # the job's Snakemake loaded the config the main process checked (JSON), not the YAML again
    (slurm_log,) = (tmp_path / "results" / "logs" / "slurm").rglob("*.log")
    commands = re.findall(r"--configfiles (\S+)", slurm_log.read_text())
    assert commands and {Path(c).parent for c in commands} == {tmp_path / ".snakemake" / "omicslake"}
    checked = json.loads(Path(commands[0]).read_text())
    assert checked["download"]["retries"] == 1 and checked["sources"]["http"][1]["format"] is None  # defaults filled

    rerun = slurm_run(tmp_path, config, cluster, profile=str(REPO / "profiles" / "slurm"))  # the path works too
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert run_jobs(cluster, rerun) == []  # nothing changed: nothing submitted


def test_a_cellxgene_query_runs_as_chunk_jobs_on_slurm(tmp_path, cluster):
    from standins.census import build_census
    from tests.test_cellxgene import query

    census = build_census(tmp_path / "census")
    config = workflow_config(tmp_path, {"cellxgene": {"census_uri": census, "queries": [query(chunk_cells=100)]}})
    result = slurm_run(tmp_path, config, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = run_jobs(cluster, result)
    chunk_jobs = [
        job for job in jobs if job["comment"].startswith("rule_ingest_cellxgene_chunk_") and "_lung_" in job["comment"]
    ]
    assert len(chunk_jobs) == 3  # 237 lung cells in chunks of 100, one SLURM job each
    assert any(job["comment"].startswith("rule_chunks_cellxgene_") for job in jobs)  # planned on a node
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    lake = Lake(tmp_path)
    assert lake.query("SELECT count(*), count(DISTINCT soma_joinid) FROM lake.cellxgene.obs") == [(237, 237)]
    assert lake.query(
        "SELECT count(DISTINCT snapshot_id) FROM lake.omicslake.loads WHERE dataset = 'cellxgene.lung'"
    ) == [(1,)]


def test_a_job_slurm_kills_for_time_comes_back_with_more_and_others_are_registered(time_limit_run):
    """The first attempt stalls past its 1-minute limit; SLURM kills it (and the group job it shares
    with `steady`); the second gets more."""
    workdir, result, out = time_limit_run.result()
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((line.split("|") for line in out.splitlines()), key=lambda job: int(job[0]))
    attempts = [job[3:] for job in jobs if job[1] == run_id(result)]
    # two members side by side: twice the memory of one (by_attempt: x 2 on the second attempt)
    assert attempts == [["TIMEOUT", "4000M", "1:00"], ["COMPLETED", "8000M", "2:00"]]
    assert Lake(workdir).query("SELECT count(*) FROM lake.http.slow") == [(2,)]
    assert Lake(workdir).query("SELECT count(*) FROM lake.http.steady") == [(1,)]


def test_small_datasets_share_slurm_jobs_and_a_failing_one_is_retried_alone(tmp_path, cluster):
    """21 small datasets in 3 submissions (groups of 10). One fails its checksum: its group job and the
    other members succeed, its registration reports it, and the next run submits it alone."""
    server = HTTPServer()
    try:
        small = [{"name": f"d{i}", "url": server.add(f"/d{i}.csv", f"n\n{i}\n".encode())} for i in range(20)]
        bad = {"name": "bad", "url": server.add("/bad.csv", b"n\n1\n"), "sha256": "0" * 64}
        config = workflow_config(tmp_path, {"http": [*small, bad]}, retries=0)
        first = slurm_run(tmp_path, config, cluster)
        assert first.returncode == 1, first.stderr[-3000:]
        jobs = run_jobs(cluster, first)
        assert len(jobs) == 3 and {(job["comment"], job["state"]) for job in jobs} == {
            ("rule_datasets_ingest_http", "COMPLETED")
        }
        # once (Snakemake's log lines may run into it: printed from the job's thread, not anchored)
        line = r"omicslake: http\.bad: http://127\.0\.0\.1:\d+/bad\.csv: sha256 mismatch: expected 0{64}, got "
        assert len(re.findall(line, first.stderr)) == 1, first.stderr[-3000:]
        lake = Lake(tmp_path)
        assert lake.query(
            "SELECT count(*), count(DISTINCT snapshot_id) FROM lake.omicslake.loads WHERE dataset LIKE 'http.d%'"
        ) == [(20, 20)]
        tables = " UNION ALL ".join(f"FROM lake.http.d{i}" for i in range(20))
        assert lake.query(f"SELECT sum(n) FROM ({tables})") == [(sum(range(20)),)]
        outcome = json.loads((tmp_path / "staging" / "http" / "bad" / "outcome" / "ingest_http.json").read_text())
        assert outcome["ok"] is False and "sha256 mismatch" in outcome["cause"] and outcome["slurm_job"]
        receipts = {p: p.stat().st_mtime_ns for p in (tmp_path / "staging" / "http").glob("d*/receipt.json")}
        assert len(receipts) == 20

        again = slurm_run(tmp_path, config, cluster)  # nothing changed upstream: only the failed one runs
        assert again.returncode == 1, again.stderr[-3000:]
        assert [job["state"] for job in run_jobs(cluster, again)] == ["COMPLETED"]
        assert set(re.findall(r"wildcards: source=http, name=(\w+)", again.stderr)) == {"bad"}  # alone
        assert {p: p.stat().st_mtime_ns for p in receipts} == receipts

        bad["sha256"] = hashlib.sha256(b"n\n1\n").hexdigest()  # the checksum fixed in the config
        fixed = slurm_run(tmp_path, config, cluster)
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        assert lake.query("SELECT n FROM lake.http.bad") == [(1,)]
    finally:
        server.stop()
