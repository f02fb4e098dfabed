"""What the workflow config asks for: (source, name) datasets and each one's config entry.

Each source module turns its block of `sources:` into datasets with `datasets(block)`, which
also checks what JSON Schema cannot (such as duplicate table names) and raises ConfigError.
"""

from __future__ import annotations

import importlib


class ConfigError(ValueError):
    pass


def source_datasets(config: dict, source: str) -> dict[str, dict]:
    module = importlib.import_module(f"omicslake.sources.{source}")
    return module.datasets(config["sources"][source])


def check(config: dict) -> None:
    """Raise ConfigError, naming the key, for what the schema lets through."""
    datasets(config)


def datasets(config: dict) -> list[tuple[str, str]]:
    """All (source, name) pairs the config asks for."""
    return [(source, name) for source in config.get("sources") or {} for name in source_datasets(config, source)]


def dataset_config(config: dict, source: str, name: str) -> dict:
    return source_datasets(config, source)[name]
