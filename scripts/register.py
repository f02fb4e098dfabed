"""Register one staged load in the lake, zero-copy and in one snapshot (omicslake.register)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the omicslake package beside rules/

from omicslake import jobs
from omicslake.register import register

jobs.run(
    snakemake.log[0],
    register,
    snakemake.input.manifest,
    snakemake.params.catalog,
    snakemake.params.data_path,
    snakemake.output.receipt,
    snakemake.params.s3,
    outcome=jobs.outcome_of(snakemake),
)
