"""The workflow on a real single-node SLURM cluster: `snakemake --profile profiles/slurm`.

The time-limit case spends most of its time waiting for SLURM (the 1-minute limit, slurmctld's
30-second time-limit sweep, the executor's growing status-check interval), so it starts in the
background as soon as the cluster is up (`time_limit_run`) and the other cases run meanwhile. Each
case counts only the jobs of its own snakemake run: the executor names every job it submits with
its run ID (it finds them by that name itself, `squeue --name`).
"""

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO, Lake, demo_http_config, run_snakemake, workflow_config
from tests.servers import HTTPServer
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


def slurm_run(workdir, config, cluster, *extra):
    """The README's cluster command, plus what a cluster without slurmdbd needs."""
    args = [
        *extra,
        "--profile",
        str(REPO / "profiles" / "slurm"),
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
    result = slurm_run(tmp_path, config, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = run_jobs(cluster, result)
    assert sorted(job["comment"] for job in jobs) == [
        "rule_ingest_http_wildcards_http_expression",
        "rule_ingest_http_wildcards_http_gene_info",
        "rule_ingest_http_wildcards_http_samples",
    ]  # probe and registration ran on the submit host
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    lake = Lake(tmp_path / "results" / "demo")  # the demo config's lake
    assert lake.query("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)") == [(30,)]
    assert (tmp_path / "results" / "demo" / "logs" / "ingest" / "http" / "samples.log").exists()

    rerun = slurm_run(tmp_path, config, cluster)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert run_jobs(cluster, rerun) == []  # nothing changed: nothing submitted


def test_a_cellxgene_query_runs_as_chunk_jobs_on_slurm(tmp_path, cluster):
    from tests.census import build_census
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
    """The first attempt stalls past its 1-minute limit; SLURM kills it; the second gets more."""
    workdir, result, out = time_limit_run.result()
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((line.split("|") for line in out.splitlines()), key=lambda job: int(job[0]))
    attempts = [job[3:] for job in jobs if job[1] == run_id(result) and job[2].endswith("_slow")]
    assert attempts == [["TIMEOUT", "2000M", "1:00"], ["COMPLETED", "4000M", "2:00"]]  # by_attempt: mem x 2
    assert Lake(workdir).query("SELECT count(*) FROM lake.http.slow") == [(2,)]
    assert Lake(workdir).query("SELECT count(*) FROM lake.http.steady") == [(1,)]
