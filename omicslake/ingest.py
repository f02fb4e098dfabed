"""Ingest jobs: ask the source for a plan, stage it through dlt, write the manifest.

A chunked source has three steps: `plan_chunks` (the dataset's chunks.json), `ingest_chunk` (one
job per chunk: its own manifest) and `ingest` (one manifest of all chunks: one snapshot).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path

from omicslake import faults, staging
from omicslake.download import DownloadSettings
from omicslake.errors import DatasetError, OmicslakeError
from omicslake.jobs import forget_chunks
from omicslake.manifest import Manifest, Receipt, fingerprint, write_json
from omicslake.sources import SOURCES
from omicslake.sources.base import Dataset

log = logging.getLogger("omicslake")


def names_its_dataset(job):
    """An error of a dataset's job that names no dataset (a missing library) becomes the dataset's."""

    @functools.wraps(job)
    def wrapper(source: str, name: str, *args, **kwargs):
        try:
            return job(source, name, *args, **kwargs)
        except DatasetError:
            raise
        except OmicslakeError as e:
            raise DatasetError(str(Dataset(source, name)), e.message, fix=e.fix) from e

    return wrapper


@names_its_dataset
def ingest(
    source: str,
    name: str,
    cfg: dict,
    manifest_path: str | Path,
    settings: dict | None = None,
    chunks: list[str] | None = None,
    lake: dict | None = None,
) -> Manifest:
    """Fetch dataset `<source>.<name>` and write its manifest; the manifest's folder is the
    dataset's staging folder (see `omicslake.staging`). For a chunked source, `chunks` are the
    manifests of its chunks, gathered into this one. `lake`: the config's lake block (a data path
    on S3 is written to directly)."""
    dataset = Dataset(source, name)
    folder = Path(manifest_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    entry, cfg = SOURCES[source].resolved(cfg), SOURCES[source].identity(cfg)
    previous = Receipt.read(folder / "receipt.json")
    if previous and previous.config != cfg:
        log.info("%s: config changed since load %s: fetching afresh", dataset, previous.load_id)
        previous = None
    if SOURCES[source].chunked:
        manifest = gather(dataset, [Manifest.read(path) for path in chunks or []], previous, cfg)
        manifest.write(manifest_path)
        return manifest
    plan = SOURCES[source].module.plan(dataset, entry, folder, previous, DownloadSettings(**(settings or {})))
    if plan is None:
        log.info("%s: upstream unchanged since load %s", dataset, previous.load_id)
        manifest = staging.unchanged(str(dataset), previous.upstream, previous.fingerprint, cfg)
    else:
        digest = fingerprint(plan.upstream, cfg)
        if previous and previous.fingerprint == digest:
            log.info("%s: content unchanged since load %s", dataset, previous.load_id)
            manifest = staging.unchanged(str(dataset), plan.upstream, digest, cfg)
        else:
            manifest = staging.stage(str(dataset), plan, folder, digest, cfg, lake=lake)
            faults.point("manifest")
            log.info("%s: staged %d files, %d rows", dataset, len(manifest.files), sum(f.rows for f in manifest.files))
    manifest.write(manifest_path)
    return manifest


@names_its_dataset
def plan_chunks(source: str, name: str, cfg: dict, chunks_path: str | Path, settings: dict | None = None) -> list:
    """Decide the chunks of dataset `<source>.<name>` and write them to `chunks_path`."""
    dataset, spec, download = Dataset(source, name), SOURCES[source], DownloadSettings(**(settings or {}))
    entry, cfg = spec.resolved(cfg), spec.identity(cfg)
    folder = Path(chunks_path).parent
    previous = Receipt.read(folder / "receipt.json")
    # replanned although the upstream is the receipt's (say, after a probe that failed): no chunks
    current = previous and previous.config == cfg and spec.module.probe(dataset, entry, previous.upstream, download)
    if current and fingerprint(current, cfg) == previous.fingerprint:
        log.info("%s: unchanged since load %s: no chunks", dataset, previous.load_id)
        write_json(chunks_path, {"dataset": str(dataset), "config": cfg, "chunks": []})
        return []
    chunks = spec.module.chunks(dataset, entry, download)
    for stale in folder.glob("chunk/*"):  # of an earlier plan with more chunks
        if not stale.name.isdigit() or int(stale.name) >= len(chunks):
            shutil.rmtree(stale)
    forget_chunks(folder)  # the last plan's chunk outcomes: this plan's chunks record their own
    write_json(chunks_path, {"dataset": str(dataset), "config": cfg, "chunks": chunks})
    log.info("%s: %d chunks", dataset, len(chunks))
    return chunks


@names_its_dataset
def ingest_chunk(
    source: str,
    name: str,
    cfg: dict,
    index: int,
    chunks_path: str | Path,
    manifest_path: str | Path,
    settings: dict | None = None,
    lake: dict | None = None,
) -> Manifest:
    """Stage chunk `index` of `chunks_path` through dlt into the manifest's folder."""
    dataset = Dataset(source, name)
    entry, cfg = SOURCES[source].resolved(cfg), SOURCES[source].identity(cfg)
    chunk = json.loads(Path(chunks_path).read_text())["chunks"][int(index)]
    folder = Path(manifest_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    plan = SOURCES[source].module.plan_chunk(dataset, entry, chunk, folder, DownloadSettings(**(settings or {})))
    pipeline = f"{staging.pipeline_name(str(dataset))}__chunk_{index}"
    digest = fingerprint(plan.upstream, cfg)
    manifest = staging.stage(str(dataset), plan, folder, digest, cfg, pipeline, empty_ok=True, lake=lake)
    log.info("%s: chunk %s staged %d rows", dataset, index, sum(f.rows for f in manifest.files))
    manifest.write(manifest_path)
    return manifest


def gather(dataset: Dataset, parts: list[Manifest], previous: Receipt | None, cfg: dict) -> Manifest:
    """One manifest of all chunks of a dataset: they register in one snapshot. No chunks: the
    plan found the upstream unchanged since the receipt `previous`."""
    if not parts:
        if not previous:
            raise DatasetError(str(dataset), "no chunks and no earlier load", fix="run again to plan anew")
        return staging.unchanged(str(dataset), previous.upstream, previous.fingerprint, cfg)
    upstream = list({u.url: u for part in parts for u in part.upstream}.values())
    digest = fingerprint(upstream, cfg)
    if previous and previous.fingerprint == digest:
        log.info("%s: content unchanged since load %s", dataset, previous.load_id)
        return staging.unchanged(str(dataset), upstream, digest, cfg)
    files = sorted((f for part in parts for f in part.files), key=lambda f: f.path)
    log.info("%s: %d chunks, %d files, %d rows", dataset, len(parts), len(files), sum(f.rows for f in files))
    return Manifest(
        dataset=str(dataset),
        source=dataset.source,
        status="changed",
        fingerprint=digest,
        upstream=upstream,
        files=files,
        config=cfg,
        pipeline=staging.pipeline_name(str(dataset)),
        load_id=max(part.load_id for part in parts),
        workflow_version=parts[0].workflow_version,
    )
