"""Fetch upstream files: HTTP(S), FTP and file:// mirrors.

HTTP: retries, backoff and Retry-After come from dlt's requests helper; this module adds resuming
a body that broke off (Range + If-Range), conditional GET and checksum verification.
FTP: listings (MLSD, or NLST + SIZE + MDTM) and downloads resumed with REST, retried on 4xx
replies, timeouts and dropped connections. `file://` URLs are read in place, never copied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ftplib
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import fsspec
import requests
from dlt.sources.helpers.requests import Client

from omicslake.errors import DatasetError, first_line
from omicslake.manifest import Upstream, utc_now

CHUNK = 1 << 20
RESUMABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclasses.dataclass
class DownloadSettings:
    retries: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 60.0


@dataclasses.dataclass
class Fetched:
    upstream: Upstream
    path: Path | None  # None when the upstream is unchanged since `previous`


def file_name(url: str) -> str:
    return Path(unquote(urlparse(url).path)).name or "download"


def local_path(url: str) -> Path:
    """Path of a `file:` URL: `file:///abs/path` or `file:relative/path` (relative to the CWD)."""
    parsed = urlparse(url)
    host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
    return Path(unquote(host + parsed.path)).expanduser()


def sha256_of(path: Path, hasher=None) -> hashlib._Hash:
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            hasher.update(block)
    return hasher


def checksum_label(sha256: str) -> str:
    """`sha256:<hex>` from a configured sha256 with or without the prefix."""
    return "sha256:" + sha256.lower().removeprefix("sha256:")


def verify(dataset: str, url: str, digest: str, expected: str | None) -> str:
    if expected and f"sha256:{digest}" != checksum_label(expected):
        raise DatasetError(dataset, f"sha256 mismatch: expected {expected}, got {digest}", url)
    return f"sha256:{digest}"


def fetch(
    dataset: str,
    url: str,
    directory: Path,
    sha256: str | None = None,
    previous: Upstream | None = None,
    settings: DownloadSettings | None = None,
) -> Fetched:
    """Fetch `url` into `directory` (http/https) or locate it (file); None path = unchanged.

    `previous` (the upstream of the last registered load) enables the unchanged shortcut, unless
    the configured sha256 says the registered bytes are not the wanted ones.
    """
    if previous and sha256 and previous.checksum != checksum_label(sha256):
        previous = None
    if urlparse(url).scheme == "file":
        return fetch_local(dataset, url, sha256, previous)
    if urlparse(url).scheme in ("http", "https"):
        return fetch_http(dataset, url, directory, sha256, previous, settings or DownloadSettings())
    raise DatasetError(dataset, f"unsupported URL scheme in {url!r} (http, https, file)")


@dataclasses.dataclass
class RemoteFile:
    url: str
    size: int | None
    modified: str | None


class NotFound(DatasetError):
    """The server says the file or folder does not exist (not a passing failure)."""


class IncompleteTransfer(OSError):
    """The server ended a transfer early without saying so."""


FTP_TRANSIENT = (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, EOFError, OSError)


def ftp_call(dataset: str, url: str, settings: DownloadSettings, action):
    """Run `action(fs, path)` on a fresh FTP connection, retrying 4xx replies (421 too many
    users), timeouts and dropped connections with backoff; 5xx replies (550 no such file) are final.

    fsspec's FTP filesystem makes the connection; dlt's filesystem source cannot be used for
    ftp:// (it has no mtime reader for FTP, dlt#2955).
    """
    parsed = urlparse(url)
    for attempt in range(settings.retries + 1):
        try:
            fs = fsspec.filesystem(
                "ftp",
                host=parsed.hostname,
                port=parsed.port or 21,
                timeout=settings.timeout_seconds,
                skip_instance_cache=True,
            )
            try:
                return action(fs, unquote(parsed.path))
            finally:
                with contextlib.suppress(*FTP_TRANSIENT, ftplib.Error):
                    fs.ftp.quit()
        except ftplib.error_perm as e:
            if str(e).startswith("550"):
                raise NotFound(dataset, f"not found on the FTP server ({first_line(e)})", url) from e
            raise DatasetError(dataset, f"the FTP server refused: {first_line(e)}", url) from e
        except FTP_TRANSIENT as e:
            if attempt == settings.retries:
                raise DatasetError(dataset, f"FTP failed {attempt + 1} times: {first_line(e)}", url) from e
            time.sleep(min(60.0, settings.backoff_seconds * 2**attempt))


def list_dir(dataset: str, url: str, settings: DownloadSettings) -> list[RemoteFile]:
    """The files (not folders) in a remote folder, ftp:// or file://, sorted by name."""
    base = url.rstrip("/")
    if urlparse(url).scheme == "file":
        path = local_path(url)
        if not path.is_dir():
            raise NotFound(dataset, "not found", url)
        return [
            RemoteFile(f"{base}/{e.name}", e.stat().st_size, datetime.fromtimestamp(e.stat().st_mtime, UTC).isoformat())
            for e in sorted(os.scandir(path), key=lambda e: e.name)
            if e.is_file()
        ]
    if urlparse(url).scheme != "ftp":
        raise DatasetError(dataset, f"unsupported URL scheme in {url!r} (ftp, file)")

    def ls(fs, path):
        return sorted(
            (RemoteFile(f"{base}/{name}", size, modified) for name, size, modified in ftp_files(fs.ftp, path)),
            key=lambda f: f.url,
        )

    return ftp_call(dataset, url, settings, ls)


def ftp_files(ftp: ftplib.FTP, path: str) -> list[tuple[str, int | None, str | None]]:
    """(name, size, modification time) of the files in `path`.

    MLSD where the server has it; else NLST with SIZE and MDTM per file (LIST's dates change
    format after six months, which would look like a change). Replies other than 550 propagate,
    so a passing 4xx is retried, never taken for an empty folder (fsspec's `ls` does that).
    """
    try:
        return [
            (name, int(facts["size"]) if "size" in facts else None, facts.get("modify"))
            for name, facts in ftp.mlsd(path, facts=["type", "size", "modify"])
            if facts.get("type") == "file"
        ]
    except ftplib.error_perm as e:
        if not str(e).startswith(("500", "501", "502")):
            raise  # 550: no such folder
    names = [n.rsplit("/", 1)[-1] for n in ftp.nlst(path)]
    ftp.voidcmd("TYPE I")  # SIZE needs binary mode (NLST just switched to ASCII)
    files = []
    for name in names:
        try:
            size = ftp.size(f"{path.rstrip('/')}/{name}")
        except ftplib.error_perm:
            continue  # a folder
        files.append((name, size, ftp.voidcmd(f"MDTM {path.rstrip('/')}/{name}")[4:].strip()))
    return files


def fetch_remote(dataset: str, remote: RemoteFile, directory: Path, settings: DownloadSettings) -> Fetched:
    """A listed file: read in place (file://) or downloaded with REST resume (ftp://)."""
    if urlparse(remote.url).scheme == "file":
        path = local_path(remote.url)
        return Fetched(Upstream(remote.url, None, remote.size, None, remote.modified, None, utc_now()), path)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name(remote.url)
    part, part_meta = Path(f"{target}.part"), Path(f"{target}.part.json")
    identity = {"url": remote.url, "size": remote.size, "modified": remote.modified}
    if resumable(part, part_meta, remote.url) != identity:
        part.unlink(missing_ok=True)  # a partial download of another version of the file
    part_meta.write_text(json.dumps(identity))

    def retrieve(fs, path):
        have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and have == remote.size:
            return  # whole already (killed before the rename)
        if remote.size is not None and have > remote.size:
            part.unlink()
            have = 0
        with open(part, "ab" if have else "wb") as out:
            fs.ftp.voidcmd("TYPE I")
            fs.ftp.retrbinary(f"RETR {path}", out.write, blocksize=CHUNK, rest=have or None)
        if remote.size is not None and part.stat().st_size != remote.size:
            raise IncompleteTransfer(f"got {part.stat().st_size} of {remote.size} bytes")

    ftp_call(dataset, remote.url, settings, retrieve)
    checksum = f"sha256:{sha256_of(part).hexdigest()}"
    part.replace(target)
    part_meta.unlink(missing_ok=True)
    return Fetched(Upstream(remote.url, checksum, remote.size, None, remote.modified, None, utc_now()), target)


def fetch_local(dataset: str, url: str, sha256: str | None, previous: Upstream | None) -> Fetched:
    path = local_path(url)
    if not path.is_file():
        raise DatasetError(dataset, "file not found", str(path))
    stat = path.stat()
    mtime = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
    if previous and previous.size == stat.st_size and previous.last_modified == mtime:
        return Fetched(previous, None)
    checksum = verify(dataset, url, sha256_of(path).hexdigest(), sha256)
    return Fetched(Upstream(url, checksum, stat.st_size, None, mtime, None, utc_now()), path)


def fetch_http(
    dataset: str,
    url: str,
    directory: Path,
    sha256: str | None,
    previous: Upstream | None,
    settings: DownloadSettings,
) -> Fetched:
    session = Client(
        request_timeout=settings.timeout_seconds,
        request_max_attempts=settings.retries + 1,
        request_backoff_factor=settings.backoff_seconds,
        request_max_retry_delay=max(60.0, settings.backoff_seconds),
        raise_for_status=False,
    ).session
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name(url)
    part, part_meta = Path(f"{target}.part"), Path(f"{target}.part.json")
    hasher = hashlib.sha256()
    validators = resumable(part, part_meta, url)  # left by an earlier, interrupted attempt
    if validators:
        sha256_of(part, hasher)
    else:
        part.unlink(missing_ok=True)

    for attempt in range(settings.retries + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if have and (validators.get("etag") or validators.get("last_modified")):
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = validators.get("etag") or validators["last_modified"]
        elif previous and not have:
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        try:
            response = session.get(url, headers=headers, stream=True)
        except RESUMABLE as e:
            raise DatasetError(dataset, f"cannot reach server after {settings.retries + 1} attempts: {e}", url) from e
        with response:
            if response.status_code == 304 and previous:
                return Fetched(previous, None)
            if "Range" in headers and response.status_code not in (200, 206):
                part.unlink(missing_ok=True)  # e.g. 416 for a part that was already whole: start over
                validators, hasher = {}, hashlib.sha256()
                continue
            if response.status_code not in (200, 206):
                reason = response.reason or ""
                raise DatasetError(dataset, f"HTTP {response.status_code} {reason}".strip(), url)
            if response.status_code == 200 or not response.headers.get("Content-Range", "").startswith(
                f"bytes {have}-"
            ):
                have, hasher = 0, hashlib.sha256()  # server ignored the Range: start over
            validators = {
                "url": url,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }
            part_meta.write_text(json.dumps(validators))
            try:
                with open(part, "ab" if have else "wb") as out:
                    for block in response.iter_content(CHUNK):
                        out.write(block)
                        hasher.update(block)
            except RESUMABLE as e:
                if attempt == settings.retries:
                    raise DatasetError(dataset, f"download broke off {settings.retries + 1} times: {e}", url) from e
                time.sleep(min(60.0, settings.backoff_seconds * 2**attempt))
                continue
            total = content_total(response)
            if total is not None and part.stat().st_size != total:
                if attempt == settings.retries:
                    raise DatasetError(dataset, f"incomplete download: {part.stat().st_size} of {total} bytes", url)
                continue
            break

    try:
        checksum = verify(dataset, url, hasher.hexdigest(), sha256)
    except DatasetError:
        part.unlink(missing_ok=True)  # never resume from bytes that failed the check
        part_meta.unlink(missing_ok=True)
        raise
    part.replace(target)
    part_meta.unlink(missing_ok=True)
    size = target.stat().st_size
    upstream = Upstream(url, checksum, size, validators["etag"], validators["last_modified"], None, utc_now())
    return Fetched(upstream, target)


def resumable(part: Path, part_meta: Path, url: str) -> dict:
    """Validators of a partial download of `url`, if one can be resumed."""
    try:
        validators = json.loads(part_meta.read_text())
    except (OSError, ValueError):
        return {}
    return validators if part.exists() and validators.get("url") == url else {}


def content_total(response: requests.Response) -> int | None:
    """Total size of the resource from Content-Range (206) or Content-Length (200)."""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
