"""`omicslake` command: query the lake a workflow config points at.

omicslake query [--config FILE] "SELECT ..."   run SQL against the lake (attached as `lake`)
omicslake attach [--config FILE]               print the ATTACH statement for duckdb / other clients
omicslake ingest / register                    run one job by hand (what the workflow rules run)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from omicslake import jobs
from omicslake.catalog import attach_sql, normalise, open_lake

DEFAULTS = {"catalog": "results/lake/omicslake.ducklake", "data_path": "results/lake/data/"}


def lake_settings(config_file: str) -> tuple[str, str]:
    config = yaml.safe_load(Path(config_file).read_text()) or {}
    lake = {**DEFAULTS, **(config.get("lake") or {})}
    return lake["catalog"], lake["data_path"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omicslake", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    query = commands.add_parser("query", help="run SQL against the lake (read-only)")
    query.add_argument("sql")
    query.add_argument("--max-rows", type=int, default=40)
    commands.add_parser("attach", help="print the ATTACH statement for this lake")
    ingest = commands.add_parser("ingest", help="fetch and stage one dataset")
    ingest.add_argument("dataset", help="<source>.<name>, as in the config")
    register = commands.add_parser("register", help="register one staged dataset")
    register.add_argument("dataset", help="<source>.<name>, as in the config")
    args = parser.parse_args(argv)

    catalog, data_path = lake_settings(args.config)
    if args.command == "attach":
        print(attach_sql(*normalise(catalog, data_path), read_only=True) + ";")
    elif args.command == "query":
        with open_lake(catalog, data_path, read_only=True) as con:
            con.sql(args.sql).show(max_rows=args.max_rows, max_width=200)
    else:
        return run_job(args)
    return 0


def run_job(args) -> int:
    from omicslake import config as cfg
    from omicslake.ingest import ingest
    from omicslake.register import register

    config = yaml.safe_load(Path(args.config).read_text()) or {}
    source, _, name = args.dataset.partition(".")
    folder = Path(config.get("staging", "results/staging/"), source, name)
    if args.command == "ingest":
        jobs.run(
            None,
            ingest,
            source,
            name,
            cfg.dataset_config(config, source, name),
            folder / "manifest.json",
            config.get("download"),
        )
    else:
        catalog, data_path = lake_settings(args.config)
        jobs.run(None, register, folder / "manifest.json", catalog, data_path, folder / "receipt.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
