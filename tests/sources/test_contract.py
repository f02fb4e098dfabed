"""The contract every source keeps, through the real workflow (fsspec's shared-suite pattern): a
first load, an unchanged rerun that starts no job, a new upstream version that replaces the
changed datasets' rows in one snapshot each, and a broken upstream that fails its datasets with one
line each and leaves the lake as it was. Each source gives its stand-in (tests/sources/upstreams.py)."""

import pytest

from tests.conftest import NO_RETRIES, Lake, probe_report, run_snakemake, started_jobs, workflow_config

pytestmark = pytest.mark.slow


def registered(result) -> set[str]:
    return {name for rule, name in started_jobs(result) if rule == "register"}


def test_the_lifecycle_of_every_source(tmp_path, upstream):
    upstream.publish(1)
    config = workflow_config(tmp_path, {upstream.source: upstream.block()})
    lake = Lake(tmp_path)

    first = run_snakemake(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert registered(first) == set(upstream.names)
    assert upstream.contents(lake) == upstream.expected[1]
    loads = lake.query("SELECT dataset FROM lake.omicslake.loads ORDER BY 1")
    assert loads == sorted((f"{upstream.source}.{name}",) for name in upstream.names)
    snapshots = lake.snapshots()

    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert started_jobs(again) == []  # the probe only
    assert probe_report(tmp_path, upstream.source) == dict.fromkeys(upstream.names, "unchanged")
    assert lake.snapshots() == snapshots

    upstream.publish(2)
    changed = run_snakemake(tmp_path, config)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert registered(changed) == upstream.changed  # the others are left alone
    assert upstream.contents(lake) == upstream.expected[2]  # replaced, not appended
    assert lake.snapshots() == snapshots + len(upstream.changed)  # one snapshot per changed dataset
    for name in upstream.changed:  # the old rows went in the snapshot that added the new ones
        changes = lake.query(
            "SELECT changes FROM lake.snapshots() WHERE snapshot_id = (SELECT max(snapshot_id) "
            "FROM lake.omicslake.loads WHERE dataset = ?)",
            [f"{upstream.source}.{name}"],
        )[0][0]
        deleted = "tables_deleted_from" in changes or "inlined_delete" in changes  # a few rows: in the catalog
        assert "tables_inserted_into" in changes and deleted, (name, changes)
    snapshots = lake.snapshots()

    upstream.break_()
    broken = run_snakemake(tmp_path, config, "--keep-going", *NO_RETRIES)
    assert broken.returncode != 0
    lines = [line for line in broken.stderr.splitlines() if line.startswith("omicslake: ")]
    failed = sorted(line.split(": ")[1] for line in lines)
    assert failed == sorted(f"{upstream.source}.{name}" for name in upstream.broken), lines  # one line each
    assert all("; fix: " in line and "Traceback" not in line for line in lines), lines
    assert lake.snapshots() == snapshots
    assert upstream.contents(lake) == upstream.expected[2]  # the lake as it was

    for secret in upstream.secrets:  # not in logs, stamps, manifests, receipts, the catalog or the data
        assert [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] == []
