"""Kaggle datasets through kagglesdk, the SDK under both official clients (kagglehub, kaggle).

Config (`sources.kaggle`): api_endpoint (null: Kaggle itself), datasets: ref (owner/slug),
version (null: the current one), files (globs), tables (file glob -> table name), name. Each
entry is one dataset writing `kaggle.datasets`, `kaggle.files` and one `kaggle.<table>` per file
group. The archive is fetched with the SDK's DownloadDataset (a 302 to the zip) and unpacked by
`omicslake.archives` (hostile members refused), not by kagglehub, whose zip extraction silently
rewrites them. Credentials: KAGGLE_API_TOKEN, or KAGGLE_USERNAME + KAGGLE_KEY, or kaggle.json.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
from pathlib import Path

from omicslake.config import ConfigError
from omicslake.download import DownloadSettings
from omicslake.errors import DatasetError, first_line
from omicslake.manifest import Receipt, Upstream
from omicslake.sources.base import Dataset, Plan, unchanged
from omicslake.sources.zenodo import table_name

RESERVED = {"datasets", "files", "probe"}
CREDENTIALS = "set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle"


def datasets(block: dict) -> dict[str, dict]:
    """One dataset per entry, named `<owner>__<slug>` in snake_case unless named."""
    out = {}
    for i, entry in enumerate(block.get("datasets") or []):
        owner, _, slug = entry["ref"].partition("/")
        name = entry.get("name") or f"{owner}__{slug}".replace("-", "_").lower()
        if name in out:
            raise ConfigError(f"config key sources.kaggle.datasets[{i}]: {name!r} is listed twice")
        for pattern, table in (entry.get("tables") or {}).items():
            if table in RESERVED:
                raise ConfigError(f"config key sources.kaggle.datasets[{i}].tables.{pattern}: {table!r} is reserved")
        out[name] = {"api_endpoint": block.get("api_endpoint"), **entry}
    return out


def probe(dataset: Dataset, entry: dict, previous: list[Upstream] | None, settings: DownloadSettings) -> list[Upstream]:
    """The dataset version a load would read: a new version (or another pin) is a change."""
    return [version_upstream(entry, describe(str(dataset), entry))]


def plan(
    dataset: Dataset, entry: dict, workdir: Path, previous: Receipt | None, settings: DownloadSettings
) -> Plan | None:
    """Download and unpack the version's archive; None when it is the last load's version."""
    import dlt

    from omicslake.archives import unpack

    name = str(dataset)
    meta = describe(name, entry)
    upstream = version_upstream(entry, meta)
    if unchanged(previous.upstream if previous else None, [upstream]):
        return None
    archive = download_archive(name, entry, int(upstream.version), workdir / "download")
    files = unpack(name, archive, workdir / "download" / "files")
    root = workdir / "download" / "files"

    def rows():
        import pyarrow as pa

        from omicslake.formats import infer_format, read_batches
        from omicslake.reshape import constant

        keys = {f.relative_to(root).as_posix(): f for f in files}
        chosen = {k for k in keys if any(fnmatch.fnmatchcase(k, g) for g in entry.get("files") or ["*"])}
        loaded = sorted(k for k in chosen if tabular(k))
        row = {"ref": entry["ref"], "version": int(upstream.version), "title": meta.get("title"),
               "last_updated": meta.get("last_updated"), "license": meta.get("license_name")}  # fmt: skip
        text = pa.string()
        schema = pa.schema(
            [("ref", text), ("version", pa.int64()), ("title", text), ("last_updated", text), ("license", text)]
        )
        yield dlt.mark.with_table_name(pa.Table.from_pylist([row], schema), "datasets")  # every column, even empty
        listed = [
            {
                "ref": entry["ref"],
                "version": int(upstream.version),
                "name": k,
                "size": keys[k].stat().st_size,
                "loaded": k in loaded,
            }  # fmt: skip
            for k in sorted(keys)
        ]
        yield dlt.mark.with_table_name(pa.Table.from_pylist(listed), "files")
        for key in loaded:
            table = table_name(key, entry.get("tables") or {})
            for batch in read_batches(name, keys[key], infer_format(key)):
                n = batch.num_rows
                front = {"ref": constant(entry["ref"], n), "version": pa.array([int(upstream.version)] * n, pa.int64()),
                         "file_name": constant(key, n)}  # fmt: skip
                yield dlt.mark.with_table_name(
                    pa.table({**front, **dict(zip(batch.schema.names, batch.columns, strict=True))}), table
                )

    return Plan([upstream], dlt.resource(rows(), name="kaggle"))


def tabular(key: str) -> str | None:
    """csv, tsv, parquet, json(l), gzip or not; a .txt is notes here, not a table."""
    from omicslake.formats import infer_format

    return None if ".txt" in Path(key).suffixes else infer_format(key)


def version_upstream(entry: dict, meta: dict) -> Upstream:
    version = entry.get("version") or meta.get("current_version_number")
    return Upstream(f"https://www.kaggle.com/datasets/{entry['ref']}", version=str(version))


def client(dataset: str, entry: dict):
    """A kagglesdk client with the credentials from the environment (never from the config)."""
    from kagglesdk import KaggleClient, KaggleEnv, kaggle_env

    token, user, key = (os.environ.get(v) for v in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"))
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    if not token and not (user and key) and config.exists():
        stored = json.loads(config.read_text())
        user, key = stored.get("username"), stored.get("key")
    if not token and not (user and key):
        raise DatasetError(dataset, f"no Kaggle credentials: {CREDENTIALS}")
    env = None
    if entry.get("api_endpoint"):
        # kagglesdk has no endpoint setting: its TEST environment is pointed at the one configured
        kaggle_env._env_to_endpoint[KaggleEnv.TEST] = entry["api_endpoint"].rstrip("/")
        env = KaggleEnv.TEST
    return KaggleClient(env, api_token=token, username=None if token else user, password=None if token else key)


def answer(e: Exception) -> str:
    """`HTTP <status>: <message>` of a failed call (401: the credentials are refused)."""
    response = getattr(e, "response", None)
    return f"HTTP {response.status_code}: {first_line(e)}" if response is not None else first_line(e)


def describe(dataset: str, entry: dict) -> dict:
    """GetDataset: title, last update, current version, ..."""
    from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetRequest

    owner, _, slug = entry["ref"].partition("/")
    request = ApiGetDatasetRequest()
    request.owner_slug, request.dataset_slug = owner, slug
    try:
        with client(dataset, entry) as kaggle:
            meta = kaggle.datasets.dataset_api_client.get_dataset(request)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(dataset, f"Kaggle GetDataset {entry['ref']} failed: {answer(e)}") from None
    return {
        "title": meta.title,
        "last_updated": str(meta.last_updated) if meta.last_updated else None,
        "license_name": meta.license_name,
        "current_version_number": meta.current_version_number,
    }


def download_archive(dataset: str, entry: dict, version: int, folder: Path) -> Path:
    """DownloadDataset of one version into `folder/archive`, checked against x-goog-hash md5."""
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

    owner, _, slug = entry["ref"].partition("/")
    request = ApiDownloadDatasetRequest()
    request.owner_slug, request.dataset_slug, request.dataset_version_number = owner, slug, version
    folder.mkdir(parents=True, exist_ok=True)
    path, digest = folder / "archive", hashlib.md5()
    try:
        with client(dataset, entry) as kaggle:
            response = kaggle.datasets.dataset_api_client.download_dataset(request)
            with open(path, "wb") as out:
                for block in response.iter_content(1 << 20):
                    digest.update(block)
                    out.write(block)
            expected = response.headers.get("x-goog-hash", "")
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(dataset, f"Kaggle DownloadDataset {entry['ref']} v{version} failed: {answer(e)}") from None
    md5 = dict(part.split("=", 1) for part in expected.split(",") if "=" in part).get("md5")
    if md5 and base64.b64decode(md5) != digest.digest():
        raise DatasetError(
            dataset, f"checksum mismatch: the archive's md5 is not x-goog-hash {md5}", f"{entry['ref']} v{version}"
        )
    return path
