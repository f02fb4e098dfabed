rule register:
    input:
        manifest=after_probe("{source}/{name}/manifest.json"),
    output:
        receipt=staging_path("{source}/{name}/receipt.json"),
    log:
        log_path("register/{source}/{name}.log"),
    localrule: True
    conda:
        "../envs/omicslake.yaml"
    resources:
        catalog_writer=1,
    params:
        catalog=config["lake"]["catalog"],
        data_path=config["lake"]["data_path"],
        s3=omicslake_config.s3_locations(config),
    script:
        "../scripts/register.py"
