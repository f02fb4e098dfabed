"""One ingest job: ask the source for a plan, stage it through dlt, write the manifest."""

from __future__ import annotations

import logging
from pathlib import Path

from omicslake import staging
from omicslake.download import DownloadSettings
from omicslake.manifest import Manifest, Receipt, fingerprint
from omicslake.sources import SOURCES
from omicslake.sources.base import Dataset

log = logging.getLogger("omicslake")


def ingest(source: str, name: str, cfg: dict, manifest_path: str | Path, settings: dict | None = None) -> Manifest:
    """Fetch dataset `<source>.<name>` and write its manifest; the manifest's folder is the
    dataset's staging folder (see `omicslake.staging`)."""
    dataset = Dataset(source, name)
    folder = Path(manifest_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SOURCES[source].identity(cfg)
    previous = Receipt.read(folder / "receipt.json")
    if previous and previous.config != cfg:
        log.info("%s: config changed since load %s: fetching afresh", dataset, previous.load_id)
        previous = None
    plan = SOURCES[source].module.plan(dataset, cfg, folder, previous, DownloadSettings(**(settings or {})))
    if plan is None:
        log.info("%s: upstream unchanged since load %s", dataset, previous.load_id)
        manifest = staging.unchanged(str(dataset), previous.upstream, previous.fingerprint, cfg)
    else:
        digest = fingerprint(plan.upstream, cfg)
        if previous and previous.fingerprint == digest:
            log.info("%s: content unchanged since load %s", dataset, previous.load_id)
            manifest = staging.unchanged(str(dataset), plan.upstream, digest, cfg)
        else:
            manifest = staging.stage(str(dataset), plan.source, folder, plan.upstream, digest, cfg)
            log.info("%s: staged %d files, %d rows", dataset, len(manifest.files), sum(f.rows for f in manifest.files))
    manifest.write(manifest_path)
    return manifest
