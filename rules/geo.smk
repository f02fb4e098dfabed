rule ingest_geo:
    output:
        manifest=staging_path("geo/{name}/manifest.json"),
    log:
        log_path("ingest/geo/{name}.log"),
    retries: 2
    conda:
        "../envs/omicslake.yaml"
    resources:
        downloads_geo=1,
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        source="geo",
        dataset=dataset_config("geo"),
        download=config["download"],
    script:
        "../scripts/ingest.py"
