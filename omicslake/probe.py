"""The probe job of a source: ask upstream about all its datasets at once, with a bounded pool.

A dataset's stamp (`<staging>/<source>/<name>/stamp.json`, the input of its ingest job) is
rewritten only when its upstream files or its config entry changed, or the probe failed (then
the ingest job runs and reports the error). Snakemake starts ingest and register jobs only for
datasets whose stamp is newer than their manifest: an unchanged dataset costs no job at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omicslake.download import DownloadSettings
from omicslake.errors import OmicslakeError, first_line
from omicslake.manifest import Upstream, utc_now
from omicslake.sources import SOURCES
from omicslake.sources.base import Dataset, settled, unchanged

log = logging.getLogger("omicslake")


@dataclasses.dataclass
class Stamp:
    """What the last probe that changed something saw of a dataset."""

    dataset: str
    config: dict
    upstream: list[Upstream]
    error: str | None
    probed_at: str

    @classmethod
    def read(cls, path: Path) -> Stamp | None:
        try:
            data = json.loads(path.read_text())
            data["upstream"] = [Upstream(**u) for u in data["upstream"]]
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        tmp.replace(path)


def probe(
    source: str,
    entries: dict[str, dict],
    stamps: dict[str, str],
    report: str | Path,
    settings: dict | None = None,
    log_file: str | None = None,
) -> dict:
    """Probe every dataset of `source` (`entries` and `stamps` by name); write the stamps that
    changed and a report; return
    {name: "new" | "changed" | "unchanged" | "failed: <cause>"}."""
    spec, download = SOURCES[source], DownloadSettings(**(settings or {}))

    def one(item: tuple[str, dict]) -> str:
        name, entry = item
        return probe_dataset(spec.module, Dataset(source, name), entry, Path(stamps[name]), download)

    with ThreadPoolExecutor(max_workers=spec.downloads) as pool:
        outcomes = dict(zip(entries, pool.map(one, entries.items()), strict=True))
    counts = {kind: sum(o.split(":")[0] == kind for o in outcomes.values()) for kind in ("new", "changed", "failed")}
    log.info("%s: %d datasets probed: %s; the rest unchanged", source, len(outcomes), counts)
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(json.dumps({"source": source, "probed_at": utc_now(), "datasets": outcomes}, indent=2))
    keep_latest(Path(report).parent, "*.json")
    if log_file:
        keep_latest(Path(log_file).parent, "*.log")
    return outcomes


def keep_latest(folder: Path, pattern: str, keep: int = 10) -> None:
    """Each run writes a new report and log: keep the last `keep` of them."""
    for old in sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)[:-keep]:
        old.unlink()


def probe_dataset(module, dataset: Dataset, entry: dict, path: Path, settings: DownloadSettings) -> str:
    entry = settled(entry)  # as ingest sees it
    old = Stamp.read(path)
    same_config = old is not None and old.config == entry and not old.error
    error, current = None, []
    try:
        current = module.probe(dataset, entry, old.upstream if same_config else None, settings)
    except OmicslakeError as e:
        error = str(e)
    except Exception as e:  # a probe failure is the ingest job's to report, with its own retries
        error = f"{dataset}: probe failed: {type(e).__name__}: {first_line(e)}"
    if same_config and not error and unchanged(old.upstream, current):
        return "unchanged"
    Stamp(str(dataset), entry, current, error, utc_now()).write(path)
    if error:
        log.warning("%s", error)
        return f"failed: {error}"
    outcome = "changed" if old else "new"
    log.info("%s: %s", dataset, outcome)
    return outcome
