"""Fetch one dataset and stage it as Parquet + manifest (omicslake.ingest)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake.warm import hand_off

if not snakemake.params.failure_as_output:  # a local job: run in a fork of a warm process (omicslake/warm.py)
    hand_off()

from omicslake import jobs
from omicslake.ingest import ingest

chunks = snakemake.input.get("chunks")  # chunked sources: the chunk manifests to gather

jobs.run(
    snakemake.log[0],
    ingest,
    snakemake.wildcards.source,
    snakemake.wildcards.name,
    snakemake.params.dataset,
    snakemake.output.manifest,
    snakemake.config["download"],  # not a param: a new timeout is no reason to reload
    [chunks] if isinstance(chunks, str) else chunks,  # one file is a str
    snakemake.config["lake"],  # where a data path on S3 has the files written
    outcome=jobs.outcome_of(snakemake),
    failure_to=(snakemake.output.manifest, f"{snakemake.wildcards.source}.{snakemake.wildcards.name}")
    if snakemake.params.failure_as_output
    else None,
)
