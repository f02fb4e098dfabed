# report: after every dataset of this run, the ingest summary and plots of the lake that
# `snakemake --report report.html` shows (category "Ingest summary"). A run in which a dataset
# failed writes the same pages from its `onerror` handler (Snakefile).


def report_page(name):
    return str(Path(config["report"], name))


def probe_reports(wildcards):
    """This run's probe report of every source."""
    return [staging_path(f"{source}/probe/{RUN}.json") for source in configured_sources()]


def write_report():
    """The report pages of a failed run: what loaded, what failed and why."""
    from omicslake import report as run_report

    try:
        run_report.write(
            config,
            [path for path in probe_reports(None) if os.path.exists(path)],
            *(report_page(name) for name in ("summary.html", "datasets.png", "growth.png")),
        )
    except Exception as e:  # the run has failed already: say why the report did not follow
        print(f"omicslake: the run report was not written: {e}", file=sys.stderr)


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
    script:
        "../scripts/report.py"
