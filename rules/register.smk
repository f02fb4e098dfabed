rule register:
    input:
        manifest=staging_path("{source}/{name}/manifest.json"),
    output:
        receipt=staging_path("{source}/{name}/receipt.json"),
    log:
        log_path("register/{source}/{name}.log"),
    params:
        catalog=config["lake"]["catalog"],
        data_path=config["lake"]["data_path"],
    localrule: True
    resources:
        catalog_writer=1,
    conda:
        "../envs/omicslake.yaml"
    script:
        "../scripts/register.py"
