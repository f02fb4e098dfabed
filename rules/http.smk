rule ingest_http:
    output:
        manifest=staging_path("http/{name}/manifest.json"),
    log:
        log_path("ingest/http/{name}.log"),
    retries: 2
    conda:
        "../envs/omicslake.yaml"
    resources:
        downloads_http=1,
        mem_mb=by_attempt(2000),
        runtime=by_attempt(60),
    params:
        source="http",
        dataset=dataset_config("http"),
        download=config["download"],
    script:
        "../scripts/ingest.py"
