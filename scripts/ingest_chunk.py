"""Stage one chunk of a dataset of a chunked source (omicslake.ingest.ingest_chunk)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake import jobs
from omicslake.ingest import ingest_chunk

jobs.run(
    snakemake.log[0],
    ingest_chunk,
    snakemake.wildcards.source,
    snakemake.wildcards.name,
    snakemake.params.dataset,
    snakemake.wildcards.chunk,
    snakemake.input.chunks,
    snakemake.output.manifest,
    snakemake.config["download"],
    snakemake.config["lake"],
    outcome=jobs.outcome_of(snakemake),
)
