rule ingest_http:
    output:
        manifest=staging_path("http/{name}/manifest.json"),
    log:
        log_path("ingest/http/{name}.log"),
    params:
        source="http",
        dataset=dataset_config("http"),
        download=config["download"],
    retries: 2
    resources:
        downloads_http=1,
    conda:
        "../envs/omicslake.yaml"
    script:
        "../scripts/ingest.py"
