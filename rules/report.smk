# report: after every dataset of this run, the ingest summary and plots of the lake that
# `snakemake --report report.html` shows (category "Ingest summary"). A run in which a dataset
# failed writes the same pages from its `onerror` handler (Snakefile).


rule report:
    input:
        probes=probe_reports,
        datasets=dataset_targets,
    output:
        summary=report(
            report_page("summary.html"),
            caption="../report/summary.rst",
            category="Ingest summary",
            labels={"page": "datasets this run"},
        ),
        datasets=report(
            report_page("datasets.png"),
            caption="../report/datasets.rst",
            category="Ingest summary",
            labels={"page": "rows and bytes per dataset"},
        ),
        growth=report(
            report_page("growth.png"),
            caption="../report/growth.rst",
            category="Ingest summary",
            labels={"page": "lake growth"},
        ),
    log:
        log_path("report.log"),
    localrule: True
    conda:
        "../envs/omicslake.yaml"
    params:
        since=RUN_STARTED,
    script:
        "../scripts/report.py"
