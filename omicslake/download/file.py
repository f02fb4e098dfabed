"""`file:` URLs: a local mirror, read in place (never copied). Size and mtime stand for the version."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from omicslake.download import DownloadSettings, NotFound
from omicslake.errors import DatasetError
from omicslake.manifest import Upstream


def local_path(url: str) -> Path:
    """Path of a `file:` URL: `file:///abs/path` or `file:relative/path` (relative to the CWD)."""
    parsed = urlparse(url)
    host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
    return Path(unquote(host + parsed.path)).expanduser()


MISSING = "check the path in the config (relative paths start in the working directory)"


def described(url: str, stat: os.stat_result) -> Upstream:
    return Upstream(url, size=stat.st_size, last_modified=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat())


def listing(dataset: str, url: str, settings: DownloadSettings) -> list[Upstream]:
    path = local_path(url)
    if not path.is_dir():
        raise NotFound(dataset, "not found", url, fix=MISSING)
    base = url.rstrip("/")
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    return [described(f"{base}/{e.name}", e.stat()) for e in entries if e.is_file()]


def probe(dataset: str, url: str, settings: DownloadSettings, previous: Upstream | None) -> Upstream:
    path = local_path(url)
    if not path.is_file():
        raise DatasetError(dataset, "file not found", str(path), fix=MISSING)
    return described(url, path.stat())
