"""`s3://` URLs through s3fs (fsspec): listings with ETag, size and date; resumable downloads.

The bucket's settings (endpoint, region, anonymous) come in `DownloadSettings.s3`; credentials
come from where boto looks (AWS_* variables, ~/.aws, an instance role), never from the config.
dlt's `filesystem` source lists through the same s3fs, but its file items carry no ETag.
"""

from __future__ import annotations

import functools
import json
import os

from omicslake.download import CHUNK, DownloadSettings, NotFound, Part
from omicslake.errors import RERUN, DatasetError, extra, first_line
from omicslake.errors import S3_CREDENTIALS as CREDENTIALS
from omicslake.manifest import Upstream

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def filesystem(settings: DownloadSettings):
    """The s3fs filesystem of the bucket: one per settings and credentials in the environment (its
    first request costs ~0.5 s of botocore setup), without a listings cache (ETags go stale)."""
    credentials = tuple(os.environ.get(name) for name in AWS_VARIABLES)
    return _filesystem(
        json.dumps(settings.s3 or {}, sort_keys=True), settings.retries, settings.timeout_seconds, credentials
    )


@functools.lru_cache(maxsize=8)
def _filesystem(s3: str, retries: int, timeout: float, credentials: tuple):
    s3fs = extra("s3fs", "s3")
    options = json.loads(s3)
    return s3fs.S3FileSystem(
        anon=bool(options.get("anonymous")),
        endpoint_url=options.get("endpoint_url"),
        client_kwargs={"region_name": options["region"]} if options.get("region") else {},
        config_kwargs={  # botocore's Config
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": retries + 1, "mode": "standard"},
            "s3": {"addressing_style": "path" if options.get("url_style") == "path" else "auto"},
        },
        use_listings_cache=False,
        skip_instance_cache=True,
    )


def described(url: str, info: dict) -> Upstream:
    modified = info.get("LastModified")
    return Upstream(
        url,
        size=info.get("size"),
        etag=info.get("ETag"),
        last_modified=modified.isoformat() if hasattr(modified, "isoformat") else modified,
    )


def failed(dataset: str, url: str, e: Exception) -> DatasetError:
    """One line for what S3 answered: no such bucket or key, access refused, or unreachable."""
    if isinstance(e, FileNotFoundError):
        return NotFound(dataset, "no such bucket or key", url, fix="check the bucket and key (or prefix) in the config")
    if isinstance(e, PermissionError):
        return DatasetError(dataset, f"access denied ({first_line(e)})", url, fix=CREDENTIALS)
    cause = f"S3 request failed: {type(e).__name__}: {first_line(e)}"
    if "connect" in cause.lower() or "timeout" in cause.lower():
        fix = "check endpoint_url (or region) in the config and that the S3 service is up, then run again"
        return DatasetError(dataset, cause, url, fix=fix)
    return DatasetError(dataset, cause, url, fix=RERUN)


def listing(dataset: str, url: str, settings: DownloadSettings) -> list[Upstream]:
    """Every object under the prefix `url` (recursively), sorted by URL."""
    fs = filesystem(settings)
    try:
        found = fs.find(url, detail=True)
    except Exception as e:
        raise failed(dataset, url, e) from None
    return [described(f"s3://{key}", info) for key, info in sorted(found.items()) if info.get("type") != "directory"]


def probe(dataset: str, url: str, settings: DownloadSettings, previous: Upstream | None) -> Upstream:
    try:
        return described(url, filesystem(settings).info(url))
    except Exception as e:
        raise failed(dataset, url, e) from None


def download(
    dataset: str, remote: Upstream, part: Part, settings: DownloadSettings, previous: Upstream | None
) -> Upstream:
    """The object into `part`, resuming what an earlier attempt left of the same version (ETag)."""
    identity = {"url": remote.url, "etag": remote.etag, "size": remote.size}
    if part.identity() != identity:
        part.discard()
    have = part.size()
    try:
        with filesystem(settings).open(remote.url, "rb", block_size=CHUNK * 8) as src:
            src.seek(have)
            with part.open(identity, resume=have > 0, total=remote.size) as out:
                while block := src.read(CHUNK * 8):
                    out.write(block)
    except Exception as e:
        raise failed(dataset, remote.url, e) from None
    if remote.size is not None and part.size() != remote.size:
        raise DatasetError(dataset, f"got {part.size()} of {remote.size} bytes (the object changed?)", remote.url)
    part.finish()
    return remote
