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
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    params:
        source="geo",
        dataset=dataset_config("geo"),
        download=config["download"],
    script:
        "../scripts/ingest.py"
