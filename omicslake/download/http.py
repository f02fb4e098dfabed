"""HTTP(S): retries, backoff and Retry-After come from dlt's requests helper; this module adds
waiting for X-RateLimit-Reset, resuming a body that broke off (Range + If-Range), and conditional
GET (ETag / Last-Modified)."""

from __future__ import annotations

import functools
import re
import time

import requests

from omicslake import faults
from omicslake.download import CHUNK, DownloadSettings, NotFound, Part, login
from omicslake.errors import RERUN, SERVER_DOWN, DatasetError, first_line
from omicslake.manifest import Upstream
from omicslake.urls import http_fix, public

RESUMABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def session(url: str, settings: DownloadSettings) -> requests.Session:
    from dlt.sources.helpers.requests import Client  # imported here: dlt is heavy, the DAG never needs it

    max_delay = max(60.0, settings.backoff_seconds)
    client = Client(
        request_timeout=settings.timeout_seconds,
        request_max_attempts=settings.retries + 1,
        request_backoff_factor=settings.backoff_seconds,
        request_max_retry_delay=max_delay,
        raise_for_status=False,
    )
    http = client.session
    http.auth = login(url)  # None: requests falls back to ~/.netrc
    # dlt waits for Retry-After only; rate-limited APIs such as Zenodo's send X-RateLimit-Reset
    # (when the quota refills, epoch seconds) instead. The Retrying object sits on `send`.
    http.send.retry.wait = rate_limit_wait()(multiplier=settings.backoff_seconds, max=max_delay)
    return http


@functools.cache
def rate_limit_wait() -> type:
    """dlt's wait (exponential, or Retry-After) that also waits for X-RateLimit-Reset on a 429."""
    from dlt.sources.helpers.requests.retry import _get_retry_response, wait_exponential_retry_after

    class RateLimitWait(wait_exponential_retry_after):
        def _get_retry_after(self, retry_state) -> float | None:
            seconds = super()._get_retry_after(retry_state)
            response = _get_retry_response(retry_state)  # None after a connection error
            if seconds is not None or response is None or response.status_code != 429:
                return seconds
            reset = response.headers.get("X-RateLimit-Reset", "")
            if reset.isdigit():
                wait = int(reset) - time.time()
                return max(self.min, min(self.max, wait)) if wait > 0 else None
            return seconds

    return RateLimitWait


def listing(dataset: str, url: str, settings: DownloadSettings) -> list[Upstream]:
    """A folder's files, from the links of its index page (Apache's `Index of` pages, as NCBI
    serves GEO over HTTPS, or any page that links its files), each with size and date from a HEAD
    request (the page's own columns are rounded, `2.3M`). NotFound when there is no such folder."""
    folder = url if url.endswith("/") else url + "/"
    http = session(folder, settings)
    with get(dataset, folder, http, {}, settings) as response:
        if response.status_code != 200:
            raise failed(dataset, folder, response)
        page = response.text
    return [head(dataset, file, http, settings) for file in sorted(linked_files(page, folder))]


def linked_files(page: str, folder: str) -> set[str]:
    """URLs of the files directly in `folder` that `page` links to: not its subfolders, parent, or
    sort links (`?C=N;O=D`)."""
    from html.parser import HTMLParser
    from urllib.parse import urldefrag, urljoin

    found = set()

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href") if tag == "a" else None
            if href and "?" not in href:
                target = urldefrag(urljoin(folder, href))[0]
                name = target[len(folder) :] if target.startswith(folder) else ""
                if name and "/" not in name:
                    found.add(target)

    Links().feed(page)
    return found


def head(dataset: str, url: str, http: requests.Session, settings: DownloadSettings) -> Upstream:
    with get(dataset, url, http, {}, settings, method="HEAD") as response:
        if response.status_code != 200:
            raise failed(dataset, url, response)
        return described(public(url), response)


def described(url: str, response: requests.Response) -> Upstream:
    return Upstream(
        url,
        size=content_total(response),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )


def conditional(previous: Upstream | None) -> dict:
    """If-None-Match / If-Modified-Since for the version `previous` describes."""
    headers = {}
    if previous and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


def get(dataset: str, url: str, session: requests.Session, headers: dict, settings: DownloadSettings, method="GET"):
    try:
        return session.request(method, url, headers={"Accept-Encoding": "identity", **headers}, stream=True)
    except RESUMABLE as e:
        raise DatasetError(
            dataset,
            f"cannot reach server after {settings.retries + 1} attempts: {reason(e)}",
            public(url),
            fix=SERVER_DOWN,
        ) from e


def reason(e: Exception) -> str:
    """What requests' long message comes down to: `[Errno 111] Connection refused`, `timed out`, ..."""
    found = re.search(r"\[Errno -?\d+\] [^\"')]+|[Rr]ead timed out|timed out", str(e))
    return found[0] if found else first_line(e)


def failed(dataset: str, url: str, response: requests.Response) -> DatasetError:
    error = NotFound if response.status_code in (404, 410) else DatasetError
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return error(dataset, status, public(url), fix=http_fix(response.status_code, url))


def probe(dataset: str, url: str, settings: DownloadSettings, previous: Upstream | None) -> Upstream:
    """A conditional GET whose body is not read: 304 means `previous`, else the new validators."""
    with get(dataset, url, session(url, settings), conditional(previous), settings) as response:
        if response.status_code == 304 and previous:
            return previous
        if response.status_code != 200:
            raise failed(dataset, url, response)
        return described(public(url), response)


def download(
    dataset: str, remote: Upstream, part: Part, settings: DownloadSettings, previous: Upstream | None
) -> Upstream | None:
    """Download into `part`, resuming what an earlier attempt left; None when the server says 304."""
    url, http = remote.url, session(remote.url, settings)
    resume = part.identity()
    if resume.get("url") != public(url):
        part.discard()
        resume = {}
    attempt = 0
    while True:
        have = part.size()
        validator = resume.get("etag") or resume.get("last_modified")
        if have and validator:
            headers = {"Range": f"bytes={have}-", "If-Range": validator}
        else:
            headers = {} if have else conditional(previous)
        with get(dataset, url, http, headers, settings) as response:
            if response.status_code == 304 and previous:
                return None
            ranged = response.status_code == 206
            mismatched = ranged and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
            if "Range" in headers and (response.status_code == 416 or mismatched):
                part.discard()  # a part already whole (416), or another range than asked for: start over
                resume = {}
                continue  # without a Range header this time: it cannot come back here
            if mismatched:
                raise DatasetError(
                    dataset, "the server sent part of the file unasked (HTTP 206)", public(url), fix=RERUN
                )
            if response.status_code not in (200, 206):
                raise failed(dataset, url, response)
            current = described(public(url), response)
            resume = {"url": public(url), "etag": current.etag, "last_modified": current.last_modified}
            try:
                with part.open(resume, ranged, current.size) as out:  # a 200 to a Range request: the server ignored it
                    for block in response.iter_content(CHUNK):
                        out.write(block)
                        faults.point("download")
                if current.size is not None and part.size() != current.size:
                    raise IncompleteBody(f"{part.size()} of {current.size} bytes")
            except (*RESUMABLE, IncompleteBody) as e:
                if attempt == settings.retries:
                    raise DatasetError(
                        dataset, f"download broke off {settings.retries + 1} times: {e}", public(url), fix=SERVER_DOWN
                    ) from e
                time.sleep(min(60.0, settings.backoff_seconds * 2**attempt))
                attempt += 1
                continue
            part.finish()
            return current


class IncompleteBody(Exception):
    """The server ended a body before its length without an error."""


def content_total(response: requests.Response) -> int | None:
    """Total size of the resource from Content-Range (206) or Content-Length (200)."""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
