# Omicslake: public omics data -> dlt -> staging Parquet -> zero-copy DuckLake.
# Data flow: config -> rules/ingest.smk (probe_<source> every run; ingest_<source> per changed dataset)
# -> rules/register.smk (one snapshot per load) -> rules/report.smk (the run report).


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/register.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        dataset_targets,
        rules.report.output,


onsuccess:
    REGISTRAR.close()


onerror:
    REGISTRAR.close()
    write_report()  # a dataset failed (under --keep-going the others ran): the report says which
