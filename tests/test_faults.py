"""Kill at every step: the job SIGKILLs itself at each fault point (omicslake.faults), then a plain
rerun of the workflow must end with the lake an uninterrupted run builds: same rows, no duplicate,
no orphan or missing file (`omicslake verify`), one load."""

import gzip
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from omicslake.faults import POINTS
from omicslake.verify import verify
from tests.conftest import Lake, run_snakemake, workflow_config

ROWS = "".join(f"{i}\tGENE{i}\tchr{i % 22 + 1}\t{i * 0.5}\n" for i in range(5000))
GENES = gzip.compress(("gene_id\tsymbol\tchrom\tscore\n" + ROWS).encode())


def content(lake: Lake) -> dict:
    """Rows and a content hash per data table (provenance has load ids and times, so it is
    compared by its shape: one load per dataset, its files all present)."""
    tables = lake.query(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'lake' "
        "AND schema_name <> 'omicslake' ORDER BY ALL"
    )
    out = {}
    for schema, table in tables:
        out[f"{schema}.{table}"] = lake.query(
            f"SELECT count(*), count(DISTINCT t), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) "
            f"FROM lake.{schema}.{table} t"
        )[0]
    out["loads"] = lake.query("SELECT dataset, count(*) FROM lake.omicslake.loads GROUP BY ALL ORDER BY ALL")
    return out


@pytest.mark.slow
def test_a_kill_at_every_step_recovers_with_identical_content(tmp_path_factory, http_server):
    http_server.add("/genes.tsv.gz", GENES)
    sources = {"http": [{"name": "genes", "url": http_server.url("/genes.tsv.gz"), "format": "tsv"}]}

    def build(name: str, kill: str | None = None):
        workdir = tmp_path_factory.mktemp(name)
        config = workflow_config(workdir, sources)
        env = {**os.environ, **({"OMICSLAKE_KILL_AT": kill} if kill else {})}
        first = run_snakemake(workdir, config, env=env)
        return workdir, config, first

    reference_dir, _, clean = build("reference")
    assert clean.returncode == 0, clean.stderr[-3000:]
    reference = content(Lake(reference_dir))
    assert reference["http.genes"][0] == 5000 and reference["loads"] == [("http.genes", 1)]

    def killed_then_rerun(point: str):
        workdir, config, killed = build(f"kill-{point}", point)
        rerun = run_snakemake(workdir, config)
        lake = Lake(workdir)
        found = content(lake) if rerun.returncode == 0 else None
        return point, killed, rerun, found, verify(lake.catalog, lake.data_path)

    with ThreadPoolExecutor(3) as pool:  # each scenario its own workdir and lake; mostly process start-up
        outcomes = list(pool.map(killed_then_rerun, POINTS))
    table = [
        (p, "killed" if k.returncode else "not reached", r.returncode, f == reference, v.ok)
        for p, k, r, f, v in outcomes
    ]
    print("\nkill point | first run | rerun exit | same content | verify")
    for row in table:
        print(" | ".join(str(cell) for cell in row))
    for point, killed, rerun, found, report in outcomes:
        assert killed.returncode != 0, f"{point}: the kill point was never reached"
        assert rerun.returncode == 0, f"{point}: {rerun.stderr[-3000:]}"
        assert found == reference, f"{point}: {found} != {reference}"
        assert report.ok, f"{point}: {report}"
