"""The workflow on a real single-node SLURM cluster: `snakemake --profile profiles/slurm`."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, Lake, demo_http_config, run_snakemake, workflow_config
from tests.slurm.cluster import SlurmCluster, available

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not available():
        if os.environ.get("CI"):
            pytest.fail("SLURM is not installed: .ci/run installs slurm-wlm and munge")
        pytest.skip("SLURM (slurm-wlm, munge) not installed on this machine")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


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
    before = {job["id"] for job in cluster.jobs()}
    result = slurm_run(tmp_path, config, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [job for job in cluster.jobs() if job["id"] not in before]
    assert sorted(job["comment"] for job in jobs) == [
        "rule_ingest_http_wildcards_http_expression",
        "rule_ingest_http_wildcards_http_gene_info",
        "rule_ingest_http_wildcards_http_samples",
    ]  # probe and registration ran on the submit host
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    lake = Lake(tmp_path / "results" / "demo")  # the demo config's lake
    assert lake.query("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)") == [(30,)]
    assert (tmp_path / "results" / "demo" / "logs" / "ingest" / "http" / "samples.log").exists()

    submitted = {job["id"] for job in cluster.jobs()}
    rerun = slurm_run(tmp_path, config, cluster)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {job["id"] for job in cluster.jobs()} == submitted  # nothing changed: nothing submitted


def test_a_job_slurm_kills_for_time_comes_back_with_more_and_others_are_registered(tmp_path, cluster, http_server):
    """The first attempt stalls past its 1-minute limit; SLURM kills it; the second gets more."""
    slow = http_server.add("/slow.csv", b"a,b\n1,x\n2,y\n", stall=[0, 150])  # the probe's GET, then the job's
    steady = http_server.add("/steady.csv", b"c\n3\n")
    sources = {"http": [{"name": "slow", "url": slow}, {"name": "steady", "url": steady}]}
    config = workflow_config(tmp_path, sources, retries=0, timeout_seconds=300)
    before = {job["id"] for job in cluster.jobs()}
    result = slurm_run(tmp_path, config, cluster, "--set-resources", "ingest_http:runtime=attempt*1")
    assert result.returncode == 0, result.stderr[-3000:]
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%k|%T|%m|%l"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = sorted((line.split("|") for line in out.splitlines()), key=lambda job: int(job[0]))
    attempts = [job[2:] for job in jobs if job[0] not in before and job[1].endswith("_slow")]
    assert attempts == [["TIMEOUT", "2000M", "1:00"], ["COMPLETED", "4000M", "2:00"]]  # by_attempt: mem x 2
    assert Lake(tmp_path).query("SELECT count(*) FROM lake.http.slow") == [(2,)]
    assert Lake(tmp_path).query("SELECT count(*) FROM lake.http.steady") == [(1,)]


def test_a_cellxgene_query_runs_as_chunk_jobs_on_slurm(tmp_path, cluster):
    from tests.census import build_census
    from tests.test_cellxgene import query

    census = build_census(tmp_path / "census")
    config = workflow_config(tmp_path, {"cellxgene": {"census_uri": census, "queries": [query(chunk_cells=100)]}})
    before = {job["id"] for job in cluster.jobs()}
    result = slurm_run(tmp_path, config, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [job for job in cluster.jobs() if job["id"] not in before]
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
