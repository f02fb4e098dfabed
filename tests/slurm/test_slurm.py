"""The workflow on a real single-node SLURM cluster: `snakemake --profile profiles/slurm`."""

import os
import shutil

import pytest
import yaml

from tests.conftest import REPO, Lake, run_snakemake
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


def slurm_run(workdir, config, cluster):
    """The README's cluster command, plus what a cluster without slurmdbd needs."""
    args = [
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
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    before = {job["id"] for job in cluster.jobs()}
    result = slurm_run(tmp_path, config, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [job for job in cluster.jobs() if job["id"] not in before]
    assert sorted(job["comment"] for job in jobs) == [
        "rule_ingest_http_wildcards_expression",
        "rule_ingest_http_wildcards_gene_info",
        "rule_ingest_http_wildcards_samples",
    ]
    assert {job["state"] for job in jobs} == {"COMPLETED"}  # registration ran on the submit host
    lake = Lake(tmp_path / "results" / "demo")  # the demo config's lake
    assert lake.query("SELECT count(*) FROM lake.http.expression JOIN lake.http.samples USING (sample_id)") == [(30,)]
    assert (tmp_path / "results" / "demo" / "logs" / "ingest" / "http" / "samples.log").exists()
