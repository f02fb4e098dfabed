# Omicslake: public omics data -> dlt -> staging Parquet -> zero-copy DuckLake.
# Data flow: config -> rules/ingest.smk (probe_<source> every run; ingest_<source> per changed dataset)
# -> rules/register.smk (one snapshot per load).


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/register.smk"


rule all:
    default_target: True
    input:
        all_targets,
