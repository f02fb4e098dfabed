"""Checks on the workflow config that JSON Schema cannot express."""

from __future__ import annotations


class ConfigError(ValueError):
    pass


def check(config: dict) -> None:
    """Every dataset name is unique within its source (it becomes the table `<source>.<name>`)."""
    for source, datasets in (config.get("sources") or {}).items():
        if not isinstance(datasets, list):
            continue
        seen: dict[str, int] = {}
        for i, dataset in enumerate(datasets):
            name = dataset.get("name")
            if name in seen:
                raise ConfigError(
                    f"config key sources.{source}[{i}].name: duplicate table name {name!r} "
                    f"(also sources.{source}[{seen[name]}].name); each becomes table {source}.{name}"
                )
            seen[name] = i


def datasets(config: dict) -> list[tuple[str, str]]:
    """All (source, name) pairs the config asks for."""
    return [
        (source, d["name"])
        for source, items in (config.get("sources") or {}).items()
        if isinstance(items, list)
        for d in items
    ]


def dataset_config(config: dict, source: str, name: str) -> dict:
    return next(d for d in config["sources"][source] if d["name"] == name)
