"""Kaggle datasets through kagglesdk, the SDK under both official clients (kagglehub, kaggle).

Config (`sources.kaggle`): api_endpoint (null: Kaggle itself), datasets: ref (owner/slug),
version (null: the current one), files (globs), tables (file glob -> table name), name. Each
entry is one dataset writing `kaggle.datasets`, `kaggle.files` and one `kaggle.<table>` per file
group. The archive is fetched with the SDK's DownloadDataset (a 302 to the zip) and unpacked by
`omicslake.archives` (hostile members refused), not by kagglehub, whose zip extraction silently
rewrites them. Credentials, as kagglesdk finds them: KAGGLE_API_TOKEN (a token or a file holding
one), ~/.kaggle/access_token, KAGGLE_USERNAME + KAGGLE_KEY, kaggle.json in KAGGLE_CONFIG_DIR or
~/.kaggle.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from omicslake.download import DownloadSettings
from omicslake.errors import CHECKSUM, SERVER_DOWN, ConfigError, DatasetError, extra, first_line
from omicslake.manifest import Receipt, Upstream
from omicslake.sources.base import Dataset, Plan, unchanged
from omicslake.sources.files import file_tables, files_table, junk, matches, tabular
from omicslake.urls import check_url, http_fix

RESERVED = {"datasets", "files"}
CREDENTIALS = "set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or put access_token or kaggle.json in ~/.kaggle"


def datasets(block: dict) -> dict[str, dict]:
    """One dataset per entry, named `<owner>__<slug>` in snake_case unless named."""
    if endpoint := block.get("api_endpoint"):
        check_endpoint(endpoint)
    out = {}
    for i, entry in enumerate(block.get("datasets") or []):
        name = entry.get("name") or default_name(entry["ref"])
        if name in out:
            raise ConfigError(
                f"config key sources.kaggle.datasets[{i}]: {name!r} is listed twice",
                "list it once, or set another `name`",
            )
        for pattern, table in (entry.get("tables") or {}).items():
            if table in RESERVED:
                raise ConfigError(
                    f"config key sources.kaggle.datasets[{i}].tables.{pattern}: {table!r} is reserved",
                    "choose another table name",
                )
        out[name] = {"api_endpoint": block.get("api_endpoint"), **entry}
    return out


def default_name(ref: str) -> str:
    """`Owner-1/rna.seq` -> `owner_1__rna_seq`: a dataset name starts with a letter, at most 63 long."""
    owner, _, slug = ref.partition("/")
    name = "__".join(re.sub(r"[^a-z0-9]+", "_", part.lower()).strip("_") for part in (owner, slug))
    return (name if name[:1].isalpha() else f"k_{name}")[:63]


def check_endpoint(url: str) -> None:
    """No credentials in the URL, and https unless the host is this machine: every call carries the key."""
    check_url("sources.kaggle.api_endpoint", url)
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if parsed.scheme != "https" and not local:
        raise ConfigError(
            f"config key sources.kaggle.api_endpoint: {url} would send your Kaggle credentials unencrypted",
            "use https://",
        )


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    """The dataset version a load would read: a new version (or another pin) is a change."""
    return [version_upstream(entry, describe(str(dataset), entry, settings))]


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    """Download and unpack the version's archive; None when it is the last load's version."""
    import dlt
    import pyarrow as pa

    from omicslake.archives import unpack

    name = str(dataset)
    meta = describe(name, entry, settings)
    upstream = version_upstream(entry, meta)
    if unchanged(previous.upstream if previous else None, [upstream]):
        return None
    version, ref = int(upstream.version), entry["ref"]
    where = f"{ref} v{version}"
    archive = download_archive(name, entry, version, workdir / "download", settings)
    root = workdir / "download" / "files"
    try:
        unpacked = unpack(name, archive, root)
    except DatasetError as e:  # named by the dataset version: the downloaded file is called `archive`
        raise DatasetError(name, e.cause, where, fix=e.fix) from None
    keys = {f.relative_to(root).as_posix(): f for f in unpacked}
    chosen = {k: f for k, f in keys.items() if not junk(k) and matches(k, entry.get("files") or ["*"])}
    tables = entry.get("tables") or {}
    text = pa.string()
    DATASETS = pa.schema(  # noqa: N806  (every column, even when Kaggle leaves it empty)
        [("ref", text), ("version", pa.int64()), ("title", text), ("last_updated", text), ("license", text)]
    )

    def rows():
        row = {"ref": ref, "version": version, "title": meta.get("title"),
               "last_updated": meta.get("last_updated"), "license": meta.get("license_name")}  # fmt: skip
        yield dlt.mark.with_table_name(pa.Table.from_pylist([row], DATASETS), "datasets")
        url = f"{upstream.url}/versions/{version}"
        loads = {k for k in chosen if tabular(k, tables)}
        listed = [  # the archive has an md5 (checked); its members have none
            {"key": k, "size": f.stat().st_size, "checksum": None, "url": url, "loaded": k in loads}
            for k, f in keys.items()
        ]
        yield dlt.mark.with_table_name(files_table(ref, str(version), listed), "files")
        front = {"ref": ref, "version": version}
        for table, arrow in file_tables(name, chosen, tables, front, f"{where}/"):
            yield dlt.mark.with_table_name(arrow, table)

    return Plan([upstream], dlt.resource(rows(), name="kaggle"))


def version_upstream(entry: dict, meta: dict) -> Upstream:
    version = entry.get("version") or meta.get("current_version_number")
    return Upstream(f"https://www.kaggle.com/datasets/{entry['ref']}", version=str(version))


def client(dataset: str, entry: dict, settings: DownloadSettings):
    """A kagglesdk client for the configured endpoint, with the credentials from the environment
    (never from the config) and omicslake's HTTP session (timeout, retries, rate-limit waits)."""
    extra("kagglesdk", "kaggle")
    from kagglesdk import KaggleClient, KaggleEnv
    from kagglesdk.kaggle_env import get_access_token_from_env

    from omicslake.download.http import session

    try:
        token, _ = get_access_token_from_env()  # KAGGLE_API_TOKEN (a token or a file), ~/.kaggle/access_token
        user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
        if not token and not (user and key):
            user, key = kaggle_json()
        if not token and not (user and key):
            raise DatasetError(dataset, "no Kaggle credentials", fix=CREDENTIALS)
        kaggle = KaggleClient(api_token=token, username=None if token else user, password=None if token else key)
        # kagglesdk takes its endpoint from KAGGLE_API_ENVIRONMENT (a process-wide choice among fixed hosts)
        # and sends without a timeout or retries: this client gets the configured endpoint and our session.
        http = kaggle.http_client()
        if entry.get("api_endpoint"):
            http._env, http._endpoint = KaggleEnv.LOCAL, entry["api_endpoint"].rstrip("/")  # LOCAL: /api/v1/…
        http._init_session()
        ours = session(http._endpoint, settings)
        ours.headers.update(http._session.headers)
        ours.auth = http._session.auth
        http._session.close()
        http._session = ours
    except DatasetError:
        raise
    except Exception as e:  # an unreadable token file, an unknown KAGGLE_API_ENVIRONMENT, ...
        raise DatasetError(dataset, f"cannot set up the Kaggle client: {first_line(e)}", fix=CREDENTIALS) from None
    return kaggle


def kaggle_json() -> tuple[str | None, str | None]:
    """username and key from kaggle.json in KAGGLE_CONFIG_DIR, else ~/.kaggle (as the kaggle CLI)."""
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    if not path.exists():
        return None, None
    try:
        stored = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not JSON: {e}") from None
    return stored.get("username"), stored.get("key")


def answer(e: Exception) -> str:
    """`HTTP <status>: <message>` of a failed call (401: the credentials are refused), without
    query strings: a storage URL's is a signature that grants access."""
    response = getattr(e, "response", None)
    text = f"HTTP {response.status_code}: {first_line(e)}" if response is not None else first_line(e)
    return re.sub(r"\?[^\s)'\"]*", "", text)  # with or without a scheme: urllib3 shows paths only


def kaggle_fix(e: Exception, entry: dict) -> str:
    """What to do about a failed Kaggle call: by its HTTP status, else the server is unreachable."""
    response = getattr(e, "response", None)
    if response is None:
        return "check the network (or sources.kaggle.api_endpoint) and that Kaggle is up, then run again"
    if response.status_code == 401:
        return f"the credentials were refused: {CREDENTIALS} (a current token from kaggle.com/settings)"
    if response.status_code == 403:
        return f"accept the dataset's terms on kaggle.com/datasets/{entry['ref']}, or check your credentials"
    if response.status_code == 404:
        return (
            f"check the ref {entry['ref']!r} (owner/slug) and version in sources.kaggle.datasets: "
            "a typo, or a private dataset?"
        )
    return http_fix(response.status_code, what="the dataset")


def describe(dataset: str, entry: dict, settings: DownloadSettings) -> dict:
    """GetDataset: title, last update, current version, ..."""
    from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetRequest

    owner, _, slug = entry["ref"].partition("/")
    request = ApiGetDatasetRequest()
    request.owner_slug, request.dataset_slug = owner, slug
    with client(dataset, entry, settings) as kaggle:
        try:
            meta = kaggle.datasets.dataset_api_client.get_dataset(request)
        except Exception as e:
            raise DatasetError(
                dataset, f"Kaggle GetDataset {entry['ref']} failed: {answer(e)}", fix=kaggle_fix(e, entry)
            ) from None
    return {
        "title": meta.title,
        "last_updated": str(meta.last_updated) if meta.last_updated else None,
        "license_name": meta.license_name,
        "current_version_number": meta.current_version_number,
    }


def download_archive(dataset: str, entry: dict, version: int, folder: Path, settings: DownloadSettings) -> Path:
    """DownloadDataset of one version into `folder/archive`, checked against x-goog-hash md5. A body
    that breaks off is fetched again (a fresh signed URL) up to `download.retries` times."""
    import requests
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

    owner, _, slug = entry["ref"].partition("/")
    request = ApiDownloadDatasetRequest()
    request.owner_slug, request.dataset_slug, request.dataset_version_number = owner, slug, version
    folder.mkdir(parents=True, exist_ok=True)
    path, where = folder / "archive", f"{entry['ref']} v{version}"
    broken = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    for attempt in range(settings.retries + 1):  # the session retried the calls; this retries the body
        digest = hashlib.md5()
        with client(dataset, entry, settings) as kaggle:
            try:
                response = kaggle.datasets.dataset_api_client.download_dataset(request)
            except Exception as e:
                raise DatasetError(
                    dataset, f"Kaggle DownloadDataset failed: {answer(e)}", where, fix=kaggle_fix(e, entry)
                ) from None
            try:
                with open(path, "wb") as out:
                    for block in response.iter_content(1 << 20):
                        digest.update(block)
                        out.write(block)
                break
            except broken as e:
                if attempt == settings.retries:
                    raise DatasetError(
                        dataset, f"the download broke off: {answer(e)}", where, fix=SERVER_DOWN
                    ) from None
        time.sleep(settings.backoff_seconds * 2**attempt)
    expected = response.headers.get("x-goog-hash", "")
    md5 = dict(part.split("=", 1) for part in expected.split(",") if "=" in part).get("md5")
    if md5 and base64.b64decode(md5) != digest.digest():
        raise DatasetError(
            dataset, f"checksum mismatch: the archive's md5 is not x-goog-hash {md5}", where, fix=CHECKSUM
        )
    return path
