import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the omicslake package beside this Snakefile

from omicslake import config as omicslake_config

validate(config, schema="../config/schema.yaml")
omicslake_config.check(config)


wildcard_constraints:
    source="[a-z][a-z0-9_]*",
    name="[A-Za-z][A-Za-z0-9_]*",


def staging_path(path):
    return str(Path(config["staging"], path))


def log_path(path):
    return str(Path(config["logs"], path))


def all_receipts():
    return [
        staging_path(f"{source}/{name}/receipt.json")
        for source, name in omicslake_config.datasets(config)
    ]


def dataset_config(source):
    """Params helper: the config entry of the job's dataset."""

    def get(wildcards):
        return omicslake_config.dataset_config(config, source, wildcards.name)

    return get


def by_attempt(base):
    """A resource that grows with each attempt: a job SLURM killed for time or memory gets more."""

    def scaled(wildcards, attempt):
        return base * attempt

    return scaled
