# Omicslake: public omics data -> dlt -> staging Parquet -> zero-copy DuckLake.
# Data flow: config -> rules/<source>.smk (ingest, one job per dataset) -> rules/register.smk.


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/http.smk"
include: "rules/geo.smk"
include: "rules/register.smk"


rule all:
    default_target: True
    input:
        all_receipts(),
