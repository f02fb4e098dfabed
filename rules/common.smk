import asyncio
import functools
import hashlib
import inspect
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from snakemake.common import overwrite_function_params
from snakemake.dag import ScriptProcessor
from snakemake.exceptions import IncompleteCheckpointException, WorkflowError
from snakemake.scheduling import job_scheduler
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the omicslake package beside this Snakefile

from omicslake import config as omicslake_config
from omicslake import sources as omicslake_sources
from omicslake.errors import ConfigError
from omicslake.registrar import Registrar
from omicslake.sources import SOURCES

VALIDATED = "_omicslake_validated"  # checked by the run's main process: hand_checked_config_to_jobs


def hand_checked_config_to_jobs():
    """A SLURM job is a new Snakemake process that loads the run's config files and checks them again:
    at 5,000 datasets 3.2 s more per job than at 100 (Snakemake's pure-Python YAML loader, twice, and
    two JSON Schema passes). Instead the main process writes the config it checked (defaults filled
    in) as JSON, which Snakemake loads first and fast, and has the jobs load that (Snakemake's
    `--configfiles` for them comes from `overwrite_configfiles`; `--config` values still follow).
    """
    text = json.dumps(
        {**config, VALIDATED: True}, sort_keys=True, default=str
    )  # a YAML date: text
    path = Path(
        ".snakemake",
        "omicslake",
        f"config-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json",
    )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").replace(path)
    workflow.config_settings.configfiles = [path.absolute()]


try:  # a config error: one line naming the key and the fix (Snakemake would print many, and a traceback)
    if not config.pop(
        VALIDATED, False
    ):  # else: a job's process, given the run's checked config
        try:  # Snakemake's check fills in the defaults; ours names a violation in one line
            validate(config, schema="../config/schema.yaml")
        except WorkflowError:
            omicslake_config.validate(
                config, Path(workflow.basedir, "config", "schema.yaml")
            )
            raise
        omicslake_config.check(config)
        omicslake_sources.datasets(config)  # each source checks its entries
except ConfigError as e:
    print(f"omicslake: {e}", file=sys.stderr)
    sys.exit(1)

if workflow.is_main_process:
    hand_checked_config_to_jobs()

STAMP = "{source}/{name}/stamp.json"  # a dataset's stamp, in staging: written by the probe, read by ingest
CHUNKS = "{source}/{name}/chunks.json"  # chunked sources: a dataset's chunks, decided by chunks_<source>

# This invocation: each source's probe writes a new report, so the probes (and only they) run every time.
RUN = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
RUN_STARTED = datetime.now(UTC).isoformat(
    timespec="seconds"
)  # the report: what this run did

# Per-upstream download limits, unless --resources or a profile says otherwise (the one catalog writer
# is the run's registrar: rules/register.smk).
# (Snakemake has no public API for a workflow's default global resources; `global_resources` is it.)
for _source in SOURCES.values():
    workflow.global_resources.setdefault(f"downloads_{_source.name}", _source.downloads)


# Snakemake 9.27's job rate limiter (--max-jobs-per-timespan, on by default) starts a 1-s timer on every
# pass of the scheduling loop, and each timer wakes the loop for one more pass, which starts another:
# every finished job leaves one more timer ticking for the rest of the run, and each tick re-plans
# every waiting job. At 40 tiny datasets that was 2,297 passes for 83 jobs and 13.4 s of Snakemake's
# CPU (4.7 s with one timer); it grows with the square of the run's jobs. One pending timer is all
# the limiter needs to wake the loop once its window has passed. Daemon: it never delays the exit.
def _reevaluate_once(scheduler, delay):
    timer = getattr(scheduler, "_omicslake_timer", None)
    if timer is None or not timer.is_alive():
        scheduler._omicslake_timer = threading.Timer(
            delay, scheduler._open_jobs.release
        )
        scheduler._omicslake_timer.daemon = True
        scheduler._omicslake_timer.start()


job_scheduler.JobScheduler._schedule_reevalutation = _reevaluate_once


# Snakemake 9.27 reads the size of every input file of every waiting job on each pass of the scheduling
# loop (for the greedy scheduler's preference of large inputs), as one asyncio task per file: at 1,000
# datasets that was 72% of Snakemake's main-thread CPU (py-spy, bench/README.md), and it grows with the
# square of the run's jobs (each finished job is a pass over all the waiting ones). A waiting job's inputs
# exist and no longer change: each job's are read once. (Snakemake's own version forgets sizes beyond
# 10,000 paths; a size is an int, so these stay: 10,000 datasets hold a few MB.)
async def _input_sizes_once(scheduler, jobs):
    seen = scheduler.__dict__.setdefault("_omicslake_sized", set())
    new = {path for job in jobs if job not in seen for path in job.input}
    seen.update(jobs)
    new.difference_update(scheduler._input_sizes)

    async def size(path):
        return path, await path.size() if await path.exists() else None

    scheduler._input_sizes.update(await asyncio.gather(*map(size, new)))


job_scheduler.JobScheduler.update_input_sizes = _input_sizes_once


# Snakemake 9.27 checks that a job's script is readable for every job it plans (`ScriptProcessor`:
# the path parsed as a URI and read through its source cache): at 5,000 datasets, 21% of the DAG's
# update after the probes. A script path without wildcards is the same file for every job of its
# rule: checked once (a missing script still fails the first job that names it).
def _check_script_once(processor, job):
    script = getattr(job.rule, "script", None)
    if processor.script_type != "script" or not job.is_script or "{" in str(script):
        return _check_script(processor, job)
    checked = processor.__dict__.setdefault("_omicslake_checked", set())
    if (str(script), str(job.rule.basedir)) not in checked:
        _check_script(processor, job)
        checked.add((str(script), str(job.rule.basedir)))


# Snakemake's own check, also when this file is parsed again in the same process (the API used twice)
_check_script = getattr(
    ScriptProcessor.process_job, "snakemake_check", ScriptProcessor.process_job
)
_check_script_once.snakemake_check = _check_script
ScriptProcessor.process_job = _check_script_once


wildcard_constraints:
    source="[a-z][a-z0-9_]*",
    name="[A-Za-z][A-Za-z0-9_]*",


def signature_once(func):
    """Snakemake inspects an input, params or resources function's signature at every call (about
    nine `inspect.signature` calls a job, 3% of the DAG's time at 5,000 datasets): give it once,
    through Snakemake's own `overwrite_function_params` (as its `subpath` and `prepend_param` do).
    """
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


def staging_path(path):
    return str(Path(config["staging"], path))


def probe_report(source, run="{run}"):
    """A source's probe report: in `_probes/`, which no dataset's folder can be (names start with a
    letter), so keeping the last reports never touches a dataset's stamp or manifest."""
    return staging_path(f"{source}/_probes/{run}.json")


def log_path(path):
    return str(Path(config["logs"], path))


def configured_sources():
    return sorted(source for source in config["sources"] if source_datasets(source))


@signature_once
def dataset_targets(wildcards):
    """This run's probe report of every source, and the receipts of the sources probed so far:
    Snakemake asks again as each probe finishes, so a source starts loading as soon as its own
    probe is done, and a failed probe holds back only its own source. Before the probes, the DAG
    holds only them and `all`: `snakemake -n` plans no dataset's jobs."""
    targets = []
    for source in configured_sources():
        targets.append(probe_report(source, RUN))
        if workflow.is_main_process and not probed(source):
            continue
        for name in source_datasets(source):
            plan = unplanned(source, name)
            targets.append(plan or staging_path(f"{source}/{name}/receipt.json"))
    return targets


# Sources whose probe of this run has finished: Snakemake asked once, not once per job.
PROBED = set()


def wait_for_probe(source):
    """Raise Snakemake's IncompleteCheckpointException until this run's probe of `source` has
    finished: the calling input function's job then waits for the probe."""
    if source not in PROBED:
        getattr(checkpoints, f"probe_{source}").get(run=RUN)
        PROBED.add(source)


def probed(source):
    """Has this run's probe of `source` finished?"""
    try:
        wait_for_probe(source)
        return True
    except IncompleteCheckpointException:
        return False


def unplanned(source, name):
    """For a chunked dataset whose chunks this run has not seen yet: its plan (chunks.json) as a
    checkpoint target of `all`. Snakemake resolves a checkpoint target only among the inputs of
    the job it is updating: one deeper (in ingest's input) an existing, up-to-date plan would
    stay unresolved."""
    if not workflow.is_main_process or not SOURCES[source].chunked:
        return None
    try:
        getattr(checkpoints, f"chunks_{source}").get(source=source, name=name)
        return None
    except IncompleteCheckpointException as e:
        return e.targetfile


def after_probe(pattern):
    """Input helper: the file `pattern` names, once this run's probe of the source has decided which
    stamps changed. Jobs re-executed on a cluster node or in a subprocess are not main processes
    and need no probe: their inputs exist."""

    def get(wildcards):
        if workflow.is_main_process:
            wait_for_probe(wildcards.source)
        return staging_path(pattern.format(**wildcards))

    return signature_once(get)


@signature_once
def chunk_manifests(wildcards):
    """Input helper of a chunked source's ingest: the manifest of each chunk its plan decided.
    On a cluster node (not the main process) the plan exists: read it, no checkpoint."""
    plan = staging_path(CHUNKS.format(**wildcards))
    if workflow.is_main_process:
        plan = (
            getattr(checkpoints, f"chunks_{wildcards.source}")
            .get(**wildcards)
            .output.chunks
        )
    with open(plan) as f:
        count = len(json.load(f)["chunks"])
    return [
        staging_path(f"{wildcards.source}/{wildcards.name}/chunk/{i}/manifest.json")
        for i in range(count)
    ]


@functools.cache  # the config is fixed: entries are checked once, not once per job (O(N²) in all)
def source_datasets(source):
    """Params helper: every dataset entry of a source, by name."""
    return omicslake_sources.entries(config, source)


def for_job(helper, *args):
    """A param computed only for the job that uses it: each SLURM job's process parses the whole
    workflow again, and an O(datasets) param of the probe would cost every job of a large config.
    """
    return signature_once(lambda wildcards: helper(*args))


def stamps(source):
    """Params helper: the stamp file of every dataset of a source, by name."""
    return {
        name: staging_path(STAMP.format(source=source, name=name))
        for name in source_datasets(source)
    }


@signature_once
def dataset_config(wildcards):
    """Params helper: the config entry of the job's dataset."""
    return source_datasets(wildcards.source)[wildcards.name]


def by_attempt(base):
    """A resource that grows with each attempt: a job SLURM killed for time or memory gets more."""

    def scaled(wildcards, attempt):
        return base * attempt

    return signature_once(scaled)


def ingest_resources(source):
    """Resources of `ingest_<source>` from the source registry."""
    spec = SOURCES[source]
    return {
        f"downloads_{source}": 1,
        "mem_mb": by_attempt(spec.mem_mb),
        "runtime": by_attempt(spec.runtime),
    }


REGISTRAR = Registrar()  # this run's registrations, in one process (rules/register.smk)
LAKE = {  # where the lake is, and the S3 locations it reads
    "catalog": config["lake"]["catalog"],
    "data_path": config["lake"]["data_path"],
    "s3": omicslake_sources.s3_locations(config),
}


def source_env(source):
    return f"../{SOURCES[source].conda}"


# --- the run report (rules/report.smk) ---


def report_page(name):
    return str(Path(config["report"], name))


@signature_once
def probe_reports(wildcards):
    """This run's probe report of every source."""
    return [probe_report(source, RUN) for source in configured_sources()]


def write_report():
    """The report pages of a failed run: what loaded, what failed and why."""
    from omicslake import report as run_report

    try:
        run_report.write(
            config,
            [path for path in probe_reports(None) if os.path.exists(path)],
            RUN_STARTED,
            *(
                report_page(name)
                for name in ("summary.html", "datasets.png", "growth.png")
            ),
        )
    except (
        Exception
    ) as e:  # the run has failed already: say why the report did not follow
        print(f"omicslake: the run report was not written: {e}", file=sys.stderr)
