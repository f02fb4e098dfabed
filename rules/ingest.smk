# Probe and ingest, the same for every source in the registry (omicslake/sources/__init__.py).


# probe_<source>: every run, one job per source asks upstream about all its datasets and rewrites
# the stamps of those that changed. Defined from the registry: `use rule` cannot derive a checkpoint.
for source in SOURCES:

    checkpoint:
        name:
            f"probe_{source}"
        output:
            report=probe_report(source),
        log:
            log_path(f"probe/{source}/{{run}}.log"),
        localrule: True
        conda:
            source_env(source)
        params:
            source=source,
            datasets=for_job(source_datasets, source),
            stamps=for_job(stamps, source),
        script:
            "../scripts/probe.py"


# Chunked sources (large pulls): chunks_<source> decides a changed dataset's chunks on a cluster
# node; ingest_<source>_chunk stages each chunk as its own job (retried alone); ingest_<source>
# gathers their manifests into the dataset's one manifest (one snapshot).
for source in [name for name, spec in SOURCES.items() if spec.chunked]:

    checkpoint:
        name:
            f"chunks_{source}"
        input:
            stamp=after_probe(STAMP),
        output:
            chunks=staging_path(CHUNKS),
        log:
            log_path("chunks/{source}/{name}.log"),
        wildcard_constraints:
            source=source,
        retries: 2
        conda:
            source_env(source)
        resources:
            **ingest_resources(source),
        params:
            dataset=dataset_config,
        script:
            "../scripts/chunks.py"

    rule:
        name:
            f"ingest_{source}_chunk"
        input:
            chunks=staging_path(CHUNKS),
        output:
            manifest=staging_path("{source}/{name}/chunk/{chunk}/manifest.json"),
        log:
            log_path("ingest/{source}/{name}/chunk_{chunk}.log"),
        wildcard_constraints:
            source=source,
            chunk=r"\d+",
        retries: 2
        conda:
            source_env(source)
        resources:
            **ingest_resources(source),
        params:
            dataset=dataset_config,
        script:
            "../scripts/ingest_chunk.py"


# ingest_<source>: one job per dataset whose stamp is newer than its manifest. A chunked source's
# is a local job that gathers its chunks' manifests into the dataset's one manifest.
for source, spec in SOURCES.items():

    rule:
        name:
            f"ingest_{source}"
        input:
            **({"chunks": chunk_manifests} if spec.chunked else {}),
            stamp=after_probe(STAMP),
        output:
            manifest=staging_path("{source}/{name}/manifest.json"),
        log:
            log_path("ingest/{source}/{name}.log"),
        wildcard_constraints:
            source=source,
        retries: 2
        localrule: spec.chunked
        conda:
            source_env(source)
        resources:
            **({} if spec.chunked else ingest_resources(source)),
        params:
            dataset=dataset_config,
            failure_as_output=not workflow.is_main_process,  # in a SLURM (group) job: jobs.run
        script:
            "../scripts/ingest.py"
