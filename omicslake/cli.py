"""`omicslake` command: look at and query the lake a workflow config points at.

Every command reads the workflow config: --configfile FILE (or --config FILE), default config/config.yaml.

omicslake status [--json]                      tables, latest snapshots, failed datasets, staging leftovers
omicslake query "SELECT ..."                   run SQL against the lake (attached as `lake`, the default)
omicslake attach                               print the SQL that attaches the lake in another DuckDB client
omicslake publish DEST [--data-url URL]        a frozen read-only copy of the lake, for plain DuckDB
omicslake verify [--json]                      check every registered file against the catalog
omicslake ingest / register                    run one job by hand (what the workflow rules run)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

import yaml

from omicslake import config as cfg
from omicslake import jobs, sources
from omicslake.catalog import ALIAS, open_lake, setup_sql
from omicslake.errors import ConfigError, OmicslakeError, first_line

DEFAULT_CONFIG = "config/config.yaml"
SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


def load_config(config_file: str) -> dict:
    """The workflow config, validated and with defaults filled in exactly as the Snakefile does;
    a ConfigError (one line: the file or key, the cause, the fix) when it cannot be used."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    if not Path(config_file).is_file():
        raise ConfigError(
            f"config file {config_file} not found", "pass --configfile <file>, or run in the folder that holds config/"
        )
    try:
        # libyaml's loader where PyYAML has it: a 5,000-dataset config in ~0.1 s, not ~1 s
        config = yaml.load(Path(config_file).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or first_line(e)
        raise ConfigError(f"config file {config_file} is not YAML{where}: {problem}", "correct it there") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {config_file} is not a mapping", "write it as key: value lines")
    try:  # Snakemake's check fills in the defaults (as the Snakefile's); ours names a violation in one line
        validate(config, str(SCHEMA), set_default=True)
    except WorkflowError:
        cfg.validate(config, SCHEMA)
        raise
    cfg.check(config)
    sources.datasets(config)  # each source checks its entries
    return config


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error the user can fix ends it with one line: `omicslake: <cause>; fix: <fix>`."""
    try:
        return command(argv)
    except OmicslakeError as e:
        print(f"omicslake: {e}", file=sys.stderr)
        return 1


def command(argv: list[str] | None) -> int:
    # --configfile before or after the command, as snakemake users type it
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument(
        "--configfile", "--config", dest="configfile", default=argparse.SUPPRESS,
        help=f"the workflow config, as given to snakemake (default: {DEFAULT_CONFIG})",
    )  # fmt: skip
    parser = argparse.ArgumentParser(prog="omicslake", description=__doc__.split("\n")[0], parents=[configured])
    commands = parser.add_subparsers(dest="command", required=True)
    add = functools.partial(commands.add_parser, parents=[configured])
    shown = add("status", help="tables, latest snapshots, failed datasets and staging leftovers")
    shown.add_argument("--json", action="store_true", help="the status as JSON")
    query = add("query", help="run SQL against the lake (read-only)")
    query.add_argument("sql")
    query.add_argument("--max-rows", type=int, default=40)
    add("attach", help="print the SQL that attaches this lake in any DuckDB client")
    checked = add("verify", help="check every registered file against the catalog (exit 1 if not)")
    checked.add_argument("--json", action="store_true", help="the report as JSON")
    published = add("publish", help="write a frozen, read-only copy of the lake into DEST")
    published.add_argument("dest", help="folder for omicslake.ducklake and data/")
    published.add_argument("--data-url", help="the data path readers use (https:// or s3://); nothing is copied")
    for command, text in (("ingest", "fetch and stage one dataset"), ("register", "register one staged dataset")):
        add(command, help=text).add_argument("dataset", help="<source>.<name>, as in the config")
    args = parser.parse_args(argv)

    config = load_config(getattr(args, "configfile", DEFAULT_CONFIG))
    catalog, data_path = config["lake"]["catalog"], config["lake"]["data_path"]
    if args.command == "status":
        from omicslake.status import collect, render

        status = collect(config)
        print(json.dumps(dataclasses.asdict(status), indent=2) if args.json else render(status))
    elif args.command == "attach":
        print("\n".join(f"{statement};" for statement in setup_sql(catalog, data_path, sources.s3_locations(config))))
    elif args.command == "verify":
        from omicslake.verify import render, verify

        report = verify(catalog, data_path, sources.s3_locations(config))
        print(json.dumps(dataclasses.asdict(report), indent=2) if args.json else render(report))
        return 0 if report.ok else 1
    elif args.command == "publish":
        from omicslake.publish import publish

        out = publish(catalog, data_path, args.dest, args.data_url)
        print(f"published snapshot {out['snapshot']}: {out['linked']} files linked, {out['copied']} copied")
        print(f"ATTACH 'ducklake:{out['catalog']}' AS lake (READ_ONLY);")
    elif args.command == "query":
        with open_lake(catalog, data_path, read_only=True, s3=sources.s3_locations(config)) as con:
            con.execute(f"USE {ALIAS}")  # `FROM http.genes`, as well as `FROM lake.http.genes`
            con.sql(args.sql).show(max_rows=args.max_rows, max_width=200)
    else:
        source, _, name = args.dataset.partition(".")
        listed = sources.datasets(config)
        if (source, name) not in listed:
            known = ", ".join(f"{s}.{n}" for s, n in listed) or "none"
            raise ConfigError(f"no dataset {args.dataset} in {args.configfile}", f"name one of {known}")
        folder = Path(config["staging"], source, name)
        if args.command == "ingest":
            from omicslake.ingest import ingest  # dlt and pyarrow: only the commands that need them

            dataset = sources.dataset_config(config, source, name)
            args = (dataset, folder / "manifest.json", config["download"], None, config["lake"])
            jobs.run(None, ingest, source, name, *args, outcome=(folder, f"ingest_{source}"))
        else:
            from omicslake.register import register as register_load

            receipt = folder / "receipt.json"
            args = (folder / "manifest.json", catalog, data_path, receipt, sources.s3_locations(config))
            jobs.run(None, register_load, *args, outcome=(folder, "register"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
