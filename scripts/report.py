"""Write the run report's pages: ingest summary and plots (omicslake.report)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake import jobs, report

jobs.run(
    snakemake.log[0],
    report.write,
    snakemake.config,
    list(snakemake.input.probes),
    snakemake.params.since,
    snakemake.output.summary,
    snakemake.output.datasets,
    snakemake.output.growth,
)
