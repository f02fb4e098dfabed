"""Ask upstream about every dataset of one source; rewrite the stamps that changed (omicslake.probe)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake import jobs
from omicslake.probe import probe

jobs.run(
    snakemake.log[0],
    probe,
    snakemake.params.source,
    snakemake.params.datasets,
    snakemake.params.stamps,
    snakemake.output.report,
    snakemake.config["download"],
    snakemake.config["lake"],
    snakemake.log[0],
)
