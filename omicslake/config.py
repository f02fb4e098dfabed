"""What the workflow config asks for: (source, name) datasets and each one's config entry.

Each source turns its block of `sources:` into datasets with `datasets(block)`, which also checks
what JSON Schema cannot (such as duplicate table names) and raises ConfigError. Light: the
Snakefile builds the DAG from this without importing dlt or pyarrow.
"""

from __future__ import annotations


class ConfigError(ValueError):
    pass


def check_url(key: str, url: str) -> None:
    """No credentials in a URL: the config entry is stored with every load (manifest, receipt)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.username or parsed.password:
        host = "".join(c if c.isalnum() else "_" for c in (parsed.hostname or "")).upper()
        raise ConfigError(
            f"config key {key}: a user or password in the URL would be stored with every load; "
            f"set DOWNLOAD__{host}__USERNAME and DOWNLOAD__{host}__PASSWORD (or .dlt/secrets.toml) instead"
        )


def source_datasets(config: dict, source: str) -> dict[str, dict]:
    from omicslake.sources import SOURCES

    return SOURCES[source].module.datasets(config["sources"][source])


def check(config: dict) -> None:
    """Raise ConfigError, naming the key, for what the schema lets through."""
    catalog = (config.get("lake") or {}).get("catalog", "")
    if catalog.startswith("postgres:"):
        from psycopg.conninfo import conninfo_to_dict

        try:
            fields = conninfo_to_dict(catalog.removeprefix("postgres:"))
        except Exception:  # its message may quote the string, password and all
            raise ConfigError("config key lake.catalog: not a libpq connection string after postgres:") from None
        if fields.get("password"):
            raise ConfigError(
                "config key lake.catalog: a password in the catalog string would be stored with every run's "
                "config; set PGPASSWORD or use ~/.pgpass instead"
            )
    datasets(config)


def datasets(config: dict) -> list[tuple[str, str]]:
    """All (source, name) pairs the config asks for."""
    return [(source, name) for source in config.get("sources") or {} for name in source_datasets(config, source)]


def dataset_config(config: dict, source: str, name: str) -> dict:
    return source_datasets(config, source)[name]


def s3_locations(config: dict) -> list[dict]:
    """The S3 locations the lake reads (a DuckDB secret each): its data path when that is on S3,
    and objects registered in place."""
    from omicslake.sources import s3

    lake = config.get("lake") or {}
    own = (
        [{"scope": lake["data_path"], **(lake.get("s3") or {})}]
        if lake.get("data_path", "").startswith("s3://")
        else []
    )
    return own + [s3.location(e) for e in config.get("sources", {}).get("s3") or [] if e.get("register_in_place")]
