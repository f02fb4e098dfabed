# Probe and ingest, the same for every source in the registry (omicslake/sources/__init__.py).


# probe_<source>: every run, one job per source asks upstream about all its datasets and rewrites
# the stamps of those that changed. Defined from the registry: `use rule` cannot derive a checkpoint.
for source in SOURCES:

    checkpoint:
        name:
            f"probe_{source}"
        output:
            report=staging_path(f"{source}/probe/{{run}}.json"),
        log:
            log_path(f"probe/{source}/{{run}}.log"),
        localrule: True
        conda:
            source_env(source)
        params:
            source=source,
            datasets=source_datasets(source),
            stamps=stamps(source),
        script:
            "../scripts/probe.py"


# ingest: abstract (`source` matches no source); each source uses it as ingest_<source> below,
# setting only what differs. One job per dataset whose stamp is newer than its manifest.
rule ingest:
    input:
        stamp=after_probe(STAMP),
    output:
        manifest=staging_path("{source}/{name}/manifest.json"),
    log:
        log_path("ingest/{source}/{name}.log"),
    wildcard_constraints:
        source="(?!)",
    retries: 2
    conda:
        "../envs/omicslake.yaml"
    params:
        dataset=dataset_config,
    script:
        "../scripts/ingest.py"


use rule ingest as ingest_http with:
    wildcard_constraints:
        source="http",
    conda:
        source_env("http")
    resources:
        **ingest_resources("http"),


use rule ingest as ingest_geo with:
    wildcard_constraints:
        source="geo",
    conda:
        source_env("geo")
    resources:
        **ingest_resources("geo"),
