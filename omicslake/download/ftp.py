"""FTP: listings (MLSD, or NLST + SIZE + MDTM) and downloads resumed with REST, retried on 4xx
replies, timeouts and dropped connections; 5xx replies (550 no such file) are final.

fsspec's FTP filesystem makes the connection; its `ls` is not used (it turns a passing 4xx into an
empty folder), and dlt's filesystem source cannot read ftp:// (no mtime reader for FTP, dlt#2955).
"""

from __future__ import annotations

import contextlib
import ftplib
import threading
import time
from urllib.parse import unquote, urlparse, urlunparse

from omicslake.download import CHUNK, DownloadSettings, NotFound, Part, login
from omicslake.errors import SERVER_DOWN, DatasetError, first_line
from omicslake.manifest import Upstream
from omicslake.urls import login_variables, public

NOT_THERE = "check the URL (or accession) in the config: a typo, or not public (yet)?"


class IncompleteTransfer(OSError):
    """The server ended a transfer early without saying so."""


TRANSIENT = (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, EOFError, OSError)


def call(dataset: str, url: str, settings: DownloadSettings, action):
    """Run `action(ftp, path)` on this thread's connection to the server, retried with backoff on
    passing failures. Connections are kept for the next call: a probe of 500 series logs in once
    per thread, not 1,500 times. A kept connection the server has since closed is replaced at once."""
    parsed, attempt = urlparse(url), 0
    while True:
        kept = False
        try:
            ftp, kept = connection(parsed, settings)
            return action(ftp, unquote(parsed.path))
        except ftplib.error_perm as e:
            if str(e).startswith("550"):
                raise NotFound(
                    dataset, f"not found on the FTP server ({first_line(e)})", public(url), fix=NOT_THERE
                ) from e
            fix = (
                f"set {login_variables(url)} (or .dlt/secrets.toml)"
                if str(e).startswith("530")
                else "check the URL in the config, then run again"
            )
            raise DatasetError(dataset, f"the FTP server refused: {first_line(e)}", public(url), fix=fix) from e
        except TRANSIENT as e:
            close(parsed)
            if kept:
                continue  # the server hung up on a connection idle since an earlier call: not an attempt
            if attempt == settings.retries:
                raise DatasetError(
                    dataset, f"FTP failed {attempt + 1} times: {first_line(e)}", public(url), fix=SERVER_DOWN
                ) from e
            time.sleep(min(60.0, settings.backoff_seconds * 2**attempt))
            attempt += 1


connections = threading.local()


def connection(parsed, settings: DownloadSettings) -> tuple[ftplib.FTP, bool]:
    """(this thread's connection to the URL's server and login, whether it was kept from before)."""
    import fsspec

    kept = connections.__dict__.setdefault("open", {})
    key = (parsed.hostname, parsed.port, parsed.username)
    if key in kept:
        return kept[key].ftp, True
    user, password = login(urlunparse(parsed)) or (None, None)  # None: anonymous
    fs = fsspec.filesystem(
        "ftp",
        host=parsed.hostname,
        port=parsed.port or 21,
        username=user,
        password=password,
        timeout=settings.timeout_seconds,
        skip_instance_cache=True,
    )
    kept[key] = fs  # the filesystem object, not only its connection: it closes the connection when collected
    return fs.ftp, False


def close(parsed) -> None:
    fs = connections.__dict__.get("open", {}).pop((parsed.hostname, parsed.port, parsed.username), None)
    if fs is not None:
        with contextlib.suppress(*TRANSIENT, ftplib.Error):
            fs.ftp.close()


def listing(dataset: str, url: str, settings: DownloadSettings) -> list[Upstream]:
    base = public(url).rstrip("/")

    def ls(ftp, path):
        files = [
            Upstream(f"{base}/{name}", size=size, last_modified=modified) for name, size, modified in entries(ftp, path)
        ]
        return sorted(files, key=lambda f: f.url)

    return call(dataset, url, settings, ls)


def entries(ftp: ftplib.FTP, path: str) -> list[tuple[str, int | None, str | None]]:
    """(name, size, modification time) of the files in `path`.

    MLSD where the server has it; else NLST with SIZE and MDTM per file (LIST's dates change
    format after six months, which would look like a change). Replies other than 550 propagate,
    so a passing 4xx is retried, never taken for an empty folder.
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


def size(ftp: ftplib.FTP, path: str) -> int | None:
    """SIZE of a file (binary mode), None where the server does not say."""
    try:
        return ftp.size(path)
    except ftplib.error_perm:
        return None


def probe(dataset: str, url: str, settings: DownloadSettings, previous: Upstream | None) -> Upstream:
    folder, _, name = url.rpartition("/")
    found = [f for f in listing(dataset, folder + "/", settings) if f.url.endswith("/" + name)]
    if not found:
        raise NotFound(dataset, "not found on the FTP server", public(url), fix=NOT_THERE)
    return found[0]


def download(
    dataset: str, remote: Upstream, part: Part, settings: DownloadSettings, previous: Upstream | None
) -> Upstream:
    """RETR into `part`, resumed with REST from what an earlier attempt of the same version left."""
    identity = {"url": public(remote.url), "size": remote.size, "modified": remote.last_modified}
    if part.identity() != identity:
        part.discard()  # a partial download of another version of the file

    def retrieve(ftp, path):
        have = part.size()
        if remote.size is not None and have == remote.size:
            return  # whole already (killed before the rename)
        if remote.size is not None and have > remote.size:
            have = 0
        ftp.voidcmd("TYPE I")
        total = remote.size if remote.size is not None else size(ftp, path)  # for the progress shown
        with part.open(identity, resume=have > 0, total=total) as out:
            ftp.retrbinary(f"RETR {path}", out.write, blocksize=CHUNK, rest=have or None)
        if remote.size is not None and part.size() != remote.size:
            raise IncompleteTransfer(f"got {part.size()} of {remote.size} bytes")

    call(dataset, remote.url, settings, retrieve)
    part.finish()
    return remote
