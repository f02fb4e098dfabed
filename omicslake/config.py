"""Checks of the workflow config as a whole: the schema (one line naming the key) and the lake.

The datasets each source asks for are the source registry's (`omicslake.sources.datasets`).
Light: the Snakefile checks the config with this without importing dlt or pyarrow.
"""

from __future__ import annotations

import re

from omicslake.errors import ConfigError, first_line


def key_name(path) -> str:
    """`sources.http[0].name` for the JSON path ("sources", "http", 0, "name")."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


def validate(config: dict, schema_file) -> None:
    """The schema's most relevant violation as one ConfigError naming the key and the fix
    (Snakemake's `validate` reports it over many lines, naming the key as instance['a']['b'])."""
    from pathlib import Path

    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_file).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(config))
    if error is not None:
        raise ConfigError(*schema_violation(error))


TYPES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "null": "null",
}


def masked(text: str) -> str:
    """A config value as an error may show it: no password (`user:…@`, `password=…`), no query string."""
    text = re.sub(r"(//[^/@\s:]*):[^@/\s]*@", r"\1:***@", text)
    text = re.sub(r"(password\s*=\s*)[^\s'\"]+", r"\1***", text, flags=re.I)
    return re.sub(r"\?[^'\"\s]*", "?…", text)


def schema_violation(error) -> tuple[str, str]:
    """(message, fix) of a jsonschema ValidationError."""
    import difflib

    key, kind, expected, value = key_name(error.absolute_path), error.validator, error.validator_value, error.instance
    shown = masked(repr(value))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."  # one line, however big the value
    described = (error.schema.get("description") or "").split(". ")[0].rstrip(".")
    if kind == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties") or {})
        unknown = [k for k in value if k not in known]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return (
                f"config key {key_name([*error.absolute_path, unknown[0]])}: unknown key",
                f"{hint}remove or rename it (known here: {', '.join(known)})",
            )
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return (
            f"config key {key}: {shown} is not {' or '.join(TYPES.get(t, t) for t in types)}",
            f"set it to {' or '.join(TYPES.get(t, t) for t in types)}",
        )
    if kind == "required":
        missing = next((k for k in expected if k not in value), expected[0])
        return f"config key {key}: {missing!r} is missing", f"add {missing}: <value> to this entry"
    if kind == "enum":
        return f"config key {key}: {shown} is not allowed", f"use one of {', '.join(map(str, expected))}"
    if kind == "pattern":
        return (
            f"config key {key}: {shown} does not match {expected!r}",
            f"write it as the pattern says{f' ({described})' if described else ''}",
        )
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above", "exclusiveMaximum": "below"}
        return f"config key {key}: {shown} is out of range", f"set it to {bound[kind]} {expected}"
    fix = f"see this key in config/schema.yaml or docs/configuration.md{f' ({described})' if described else ''}"
    return f"config key {key}: {first_line(error)}", fix


def check(config: dict) -> None:
    """Raise ConfigError, naming the key, for what the schema lets through in `lake`."""
    catalog = (config.get("lake") or {}).get("catalog", "")
    if catalog.startswith("postgres:"):
        from psycopg.conninfo import conninfo_to_dict

        try:
            fields = conninfo_to_dict(catalog.removeprefix("postgres:"))
        except Exception:  # its message may quote the string, password and all
            raise ConfigError(
                "config key lake.catalog: not a libpq connection string after postgres:",
                "write it as postgres:host=<host> port=<port> dbname=<db> user=<user>",
            ) from None
        if fields.get("password"):
            raise ConfigError(
                "config key lake.catalog: a password in the catalog string would be stored with every run's config",
                "remove password= from it; set PGPASSWORD or use ~/.pgpass instead",
            )


def lake_location(config: dict) -> list[dict]:
    """The lake's own S3 location (a DuckDB secret), when its data path is on S3."""
    lake = config.get("lake") or {}
    return (
        [{"scope": lake["data_path"], **(lake.get("s3") or {})}]
        if lake.get("data_path", "").startswith("s3://")
        else []
    )
