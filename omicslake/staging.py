"""Run a dlt source into staging Parquet (filesystem destination, Arrow items) and describe it.

Layout of one dataset's staging folder (the workflow owns it):

    <staging>/<source>/<name>/
        manifest.json       declared output of the ingest rule
        receipt.json        declared output of the register rule
        download/           raw upstream files (deleted once staged)
        parquet/            dlt filesystem destination: <dataset>/<table>/<load_id>.<file_id>.parquet
        .dlt/               dlt pipelines_dir: pipeline state (incremental cursors) and schemas
        chunks.json         chunked sources: the dataset's chunks (the plan)
        chunk/<i>/          chunked sources: one chunk's manifest.json, parquet/ and .dlt/
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from omicslake import faults, workflow_version
from omicslake.errors import RESTAGE, DatasetError, causes, first_line, root_dataset_error
from omicslake.manifest import Manifest, Upstream, describe_file
from omicslake.sources.base import Plan

DLT_DATASET = "stage"


def pipeline_name(dataset: str) -> str:
    return dataset.replace(".", "__")


def stage(
    dataset: str,
    plan: Plan,
    workdir: Path,
    fingerprint: str,
    config: dict,
    pipeline: str | None = None,
    empty_ok: bool = False,
    lake: dict | None = None,
) -> Manifest:
    """Run the plan's dlt source into `workdir/parquet` and return the manifest of what it wrote,
    with the plan's files in place and the upstream files whose lake files it keeps. A lake whose
    data path is on S3 (`lake` config block) gets the files written straight to their table's
    folder there (`<data_path>/<schema>/<table>/`): registration then moves nothing.

    `plan.source` may be {upstream url: resource}: each runs as a load package of its own, so its
    files hold that upstream file's rows only (`StagedFile.upstream`). A file with no rows declares
    its table (registration creates the table and adds no file). No rows at all is an error unless
    `empty_ok` (a query that matched nothing) or the load keeps files of the last one.
    """
    import dlt  # here, not above: registration and probes import this module and never need dlt (2 s)
    from dlt.destinations import filesystem

    source, partitions = plan.source, plan.partitions
    schema = dataset.split(".")[0]
    bucket = workdir / "parquet"
    shutil.rmtree(bucket, ignore_errors=True)  # leftovers of an unregistered earlier attempt
    dlt.config["load.delete_completed_jobs"] = True  # no second local copy of each file
    remote = lake and lake["data_path"].startswith("s3://")
    pipeline = dlt.pipeline(
        pipeline_name=pipeline or pipeline_name(dataset),
        pipelines_dir=str(workdir / ".dlt"),
        destination=lake_destination(lake, partitions) if remote else filesystem(bucket_url=str(bucket.resolve())),
        dataset_name=schema if remote else DLT_DATASET,
    )
    origin: dict[str, str | None] = {}  # this attempt's load ids -> the upstream url their rows came from
    parts = source.items() if isinstance(source, dict) else [(None, source)] if source is not None else []
    try:
        pipeline.abort_packages()  # packages of an attempt that died midway: never loaded twice
        for url, resource in parts:
            for load_id in pipeline.extract(resource, loader_file_format="parquet").loads_ids:
                origin[load_id] = url
        faults.point("extract")
        pipeline.normalize()
        faults.point("normalize")
        info = pipeline.load() if parts else None
        faults.point("load")
    except Exception as e:
        cause = root_dataset_error(e)
        if cause:
            raise cause from None
        innermost = list(causes(e))[-1]
        raise DatasetError(
            dataset,
            f"dlt pipeline failed: {type(innermost).__name__}: {first_line(innermost)}",
            fix="run the workflow again; if it fails again, the job's log has the details",
        ) from e
    files = list(plan.in_place)
    for load_id in info.loads_ids if info else []:
        if load_id not in origin:
            continue  # an aborted leftover
        for step in info.metrics[load_id]:
            for job in step["job_metrics"].values():
                if job.table_name.startswith("_dlt") or not job.remote_url:
                    continue
                partition = (partitions or {}).get(job.table_name)
                if remote:
                    path, fs = job.remote_url, s3_filesystem(lake)
                else:
                    path, fs = url2pathname(urlparse(job.remote_url).path), None  # dlt percent-encodes the URL
                try:
                    staged = describe_file(path, f"{schema}.{job.table_name}", load_id, partition, fs)
                except Exception as e:
                    raise DatasetError(
                        dataset, f"cannot read back a staged file: {first_line(e)}", path, fix=RESTAGE
                    ) from None
                files.append(dataclasses.replace(staged, upstream=origin.get(load_id)))
    if not empty_ok and not plan.kept and not sum(f.rows for f in files):
        raise DatasetError(
            dataset,
            "the source has no rows (empty upstream file?); the lake keeps its current load",
            fix="check the upstream file (and `files` / `file_glob` in the config)",
        )
    load_ids = info.loads_ids if info else []
    return Manifest(
        dataset=dataset,
        source=schema,
        status="changed",
        fingerprint=fingerprint,
        upstream=plan.upstream,
        files=sorted(files, key=lambda f: f.path),
        config=config,
        pipeline=pipeline.pipeline_name,
        load_id=load_ids[-1] if load_ids else f"{time.time():.6f}",  # dlt's load ids are epoch seconds too
        workflow_version=workflow_version(),
        kept=sorted(plan.kept),
    )


def unchanged(dataset: str, upstream: list[Upstream], fingerprint: str, config: dict) -> Manifest:
    """Manifest for a source that reported no change since the last registered load."""
    return Manifest(
        dataset,
        dataset.split(".")[0],
        "unchanged",
        fingerprint,
        upstream,
        [],
        config,
        workflow_version=workflow_version(),
    )


def lake_destination(lake: dict, partitions: dict[str, dict[str, str]]):
    """dlt's filesystem destination writing into the lake's data path on S3, each table's files in
    DuckLake's folder for it (partitioned ones in `<column>=<value>/` below). dlt's own tables
    (`_dlt_loads`, `_dlt_pipeline_state`, `_dlt_version`) land beside them in the schema folder."""
    from dlt.common.configuration.specs import AwsCredentials
    from dlt.destinations import filesystem

    options = lake.get("s3") or {}
    credentials = AwsCredentials(
        region_name=options.get("region"),
        endpoint_url=options.get("endpoint_url"),
        s3_url_style="path" if options.get("url_style") == "path" or options.get("endpoint_url") else None,
    )  # keys from where boto looks (AWS_* variables, ~/.aws, the instance role): never in the config

    def partition(schema_name, table_name, load_id, file_id, ext) -> str:
        folder = hive_folder(partitions.get(table_name))
        return f"{folder}/" if folder else ""

    return filesystem(
        bucket_url=lake["data_path"],
        credentials=credentials,
        layout="{table_name}/{partition}{load_id}.{file_id}.{ext}",
        extra_placeholders={"partition": partition},
    )


def s3_filesystem(lake: dict):
    from omicslake.download import DownloadSettings
    from omicslake.download.s3 import filesystem as s3fs

    return s3fs(DownloadSettings(s3=lake.get("s3") or {}))


def hive_folder(partition: dict[str, str] | None) -> str:
    """`<column>=<value>/...` for a file's partition columns (values URL-quoted like Hive's)."""
    from urllib.parse import quote

    return "/".join(f"{quote(column, safe='')}={quote(value, safe='')}" for column, value in (partition or {}).items())


def clean(workdir: Path) -> None:
    """Remove dlt leftovers once files are registered: the bucket, completed load packages and
    downloads, of the dataset and of each of its chunks (their manifests stay: Snakemake's record)."""
    for folder in [workdir, *workdir.glob("chunk/*")]:
        shutil.rmtree(folder / "parquet", ignore_errors=True)
        for loaded in folder.glob(".dlt/*/load/loaded"):
            shutil.rmtree(loaded, ignore_errors=True)
        shutil.rmtree(folder / "download", ignore_errors=True)
