# register: one job per staged load, handed to this Snakemake process's registrar (omicslake/registrar.py):
# one process holds the lake for the whole run (no start-up, extension load or ATTACH per load) and
# registers the loads one at a time (the one writer), one snapshot, receipt and outcome per dataset.
# A job only waits for its turn: it takes no core (threads 0), so ingest jobs keep both cores and
# Snakemake's own bookkeeping overlaps the registrations. It runs in Snakemake's own environment (a
# `run:` rule has no conda env).


rule register:
    input:
        manifest=after_probe("{source}/{name}/manifest.json"),
    output:
        receipt=staging_path("{source}/{name}/receipt.json"),
    log:
        log_path("register/{source}/{name}.log"),
    retries: 0  # a load's failure is the dataset's (its checks, its schema): trying again changes nothing
    localrule: True
    threads: 0
    params:
        lake=LAKE,
    run:
        REGISTRAR.register(
            {
                **params.lake,
                "dataset": f"{wildcards.source}.{wildcards.name}",
                "manifest": input.manifest,
                "receipt": output.receipt,
                "log": log[0],
                "folder": staging_path(f"{wildcards.source}/{wildcards.name}"),
                "step": rule,
            }
        )
