"""Fetch upstream files: one contract, one module per URL scheme (`file`, `http`/`https`, `ftp`, `s3`).

    listing(dataset, url, settings) -> [Upstream]      the files of a remote folder (file, ftp, an http index page)
    probe(dataset, url, settings, previous) -> Upstream   what a file is now, without its body
    fetch(dataset, remote, directory, settings, ...) -> Fetched   its bytes: resumed, retried, checked

A scheme module has `listing`, `probe` and `download(dataset, remote, part, settings, previous)`;
`file` downloads nothing: a local mirror is read in place, never copied. Checksums (md5, sha256)
are checked here, the same for every scheme. Credentials come from the environment or dlt secrets
(`login`) and never reach a URL that is logged or stored (`public`).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from omicslake.errors import CHECKSUM, DatasetError
from omicslake.manifest import Upstream, utc_now
from omicslake.progress import Progress, Writer
from omicslake.urls import login_key, public

CHUNK = 1 << 20
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk or a quota is full: the job cannot go on


@dataclasses.dataclass
class DownloadSettings:
    retries: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 60.0
    s3: dict | None = None  # an s3:// URL's bucket: endpoint_url, region, url_style, anonymous


@dataclasses.dataclass
class Fetched:
    upstream: Upstream
    path: Path | None  # None when the upstream is unchanged since `previous`


class NotFound(DatasetError):
    """The server says the file or folder does not exist (not a passing failure)."""


def scheme_module(dataset: str, url: str):
    from omicslake.download import file, ftp, http, s3

    schemes = {"file": file, "http": http, "https": http, "ftp": ftp, "s3": s3}
    scheme = urlparse(url).scheme
    if scheme not in schemes:
        raise DatasetError(
            dataset, f"unsupported URL scheme {scheme!r}", public(url), fix=f"use one of {', '.join(schemes)}"
        )
    return schemes[scheme]


def listing(dataset: str, url: str, settings: DownloadSettings) -> list[Upstream]:
    """The files (not folders) of a remote folder, sorted by URL; NotFound if there is no such folder."""
    return scheme_module(dataset, url).listing(dataset, url, settings)


def probe(dataset: str, url: str, settings: DownloadSettings, previous: Upstream | None = None) -> Upstream:
    """Size, date and validators of a file as the server has it now (`previous` when it says 304)."""
    return scheme_module(dataset, url).probe(dataset, url, settings, previous)


def fetch(
    dataset: str,
    remote: Upstream | str,
    directory: Path,
    settings: DownloadSettings,
    checksum: str | None = None,
    previous: Upstream | None = None,
) -> Fetched:
    """The bytes of `remote` in `directory` (a `file:` URL: the file itself); path None = unchanged.

    `checksum` ("sha256:<hex>", "md5:<hex>" or bare hex) is verified; `previous` (the upstream of the
    last registered load) allows the unchanged answer, unless `checksum` says those bytes are not the
    wanted ones.
    """
    remote = Upstream(remote) if isinstance(remote, str) else remote
    expected = parse_checksum(dataset, remote.url, checksum) if checksum else None
    if previous and expected and previous.checksum != expected:
        previous = None
    module = scheme_module(dataset, remote.url)
    if urlparse(remote.url).scheme == "file":  # read in place
        current = module.probe(dataset, remote.url, settings, None)
        if previous and same_version(previous, current):
            return Fetched(previous, None)
        path = module.local_path(remote.url)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / file_name(remote.url)
        try:
            part = Part(path, f"{dataset}: {shown_name(remote.url)}")
            current = module.download(dataset, remote, part, settings, previous)
        except OSError as e:
            if e.errno not in FULL:
                raise
            raise DatasetError(
                dataset, f"cannot write {path}: {e.strerror}", public(remote.url), fix="free space, then run again"
            ) from None
        if current is None:
            return Fetched(previous, None)
    try:
        digest = verify(dataset, remote.url, path, expected)
    except DatasetError:
        if path.parent == directory:
            path.unlink()  # never keep (or resume from) bytes that failed the check
        raise
    return Fetched(dataclasses.replace(current, url=public(remote.url), checksum=digest, fetched_at=utc_now()), path)


def same_version(a: Upstream, b: Upstream) -> bool:
    """The same file in the same version: equal validators. A file with neither an ETag nor a
    date cannot be told apart from a new version, so it never counts as the same."""
    if not (b.etag or b.last_modified or b.version):
        return False
    return a.version_key() == b.version_key()


# --- checksums ----------------------------------------------------------------------------------

ALGORITHMS = {"sha256": 64, "md5": 32}


def parse_checksum(dataset: str, url: str, checksum: str) -> str:
    """`<algorithm>:<hex>` from a published checksum: `sha256:…`, `md5:…`, or bare hex (by length)."""
    algorithm, _, digest = checksum.strip().lower().rpartition(":")
    algorithm = algorithm or next((a for a, n in ALGORITHMS.items() if n == len(digest)), "")
    if ALGORITHMS.get(algorithm) != len(digest) or not re.fullmatch("[0-9a-f]+", digest):
        raise DatasetError(
            dataset, f"cannot read checksum {checksum!r}", public(url), fix="write it as sha256:<hex> or md5:<hex>"
        )
    return f"{algorithm}:{digest}"


def verify(dataset: str, url: str, path: Path, expected: str | None) -> str:
    """The file's `<algorithm>:<hex>` (the expected algorithm, else sha256); raise on a mismatch."""
    algorithm = expected.split(":")[0] if expected else "sha256"
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            hasher.update(block)
    got = f"{algorithm}:{hasher.hexdigest()}"
    if expected and got != expected:
        raise DatasetError(
            dataset,
            f"{algorithm} mismatch: expected {expected.split(':')[1]}, got {got.split(':')[1]}",
            public(url),
            fix=CHECKSUM,
        )
    return got


# --- partial downloads --------------------------------------------------------------------------


class Part:
    """A download in progress: `<target>.part`, and beside it (`.part.json`) the identity of the
    version whose bytes it holds, so that a later attempt resumes only that same version. Its
    writer reports progress (`omicslake.progress`) as `label`."""

    def __init__(self, target: Path, label: str | None = None):
        self.target = target
        self.label = label or target.name
        self.path = target.with_name(target.name + ".part")
        self.meta = target.with_name(target.name + ".part.json")

    def identity(self) -> dict:
        """What the partial bytes are (empty: nothing to resume)."""
        try:
            return json.loads(self.meta.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            return {}

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def open(self, identity: dict, resume: bool, total: int | None = None) -> Writer:
        """The part file for writing: appended to when resuming `identity`, else started afresh;
        its writes show as progress towards `total` bytes (the whole file's size, if known)."""
        self.meta.write_text(json.dumps(identity))
        done = self.size() if resume else 0
        out = open(self.path, "ab" if resume else "wb")  # noqa: SIM115 (the caller closes it)
        return Progress(self.label, total, done).wrap(out, close=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)

    def finish(self) -> None:
        self.path.replace(self.target)
        self.meta.unlink(missing_ok=True)


# --- URLs and credentials -----------------------------------------------------------------------


def file_name(url: str) -> str:
    return Path(unquote(urlparse(url).path)).name or "download"


def shown_name(url: str) -> str:
    """The file's name in progress lines: the URL's last part, or the one before a bare `/content`
    (Zenodo's `…/files/<key>/content`)."""
    parts = [p for p in unquote(urlparse(url).path).split("/") if p]
    if len(parts) > 1 and parts[-1] == "content":
        return parts[-2]
    return parts[-1] if parts else "download"


def login(url: str) -> tuple[str, str] | None:
    """User and password for the URL's host: from the URL, else from the environment or dlt secrets
    as `DOWNLOAD__<HOST>__USERNAME` / `DOWNLOAD__<HOST>__PASSWORD` (host with `.`, `-` as `_`)."""
    parsed = urlparse(url)
    if parsed.username:
        return unquote(parsed.username), unquote(parsed.password or "")
    import dlt  # its config providers read the environment and .dlt/secrets.toml ([download.<host>])

    key = f"download.{login_key(url)}"
    user = dlt.secrets.get(f"{key}.username")
    return (user, dlt.secrets.get(f"{key}.password") or "") if user else None
