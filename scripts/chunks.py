"""Decide the chunks of one dataset of a chunked source (omicslake.ingest.plan_chunks)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake import jobs
from omicslake.ingest import plan_chunks

jobs.run(
    snakemake.log[0],
    plan_chunks,
    snakemake.wildcards.source,
    snakemake.wildcards.name,
    snakemake.params.dataset,
    snakemake.output.chunks,
    snakemake.config["download"],
    outcome=jobs.outcome_of(snakemake),
)
