"""`omicslake publish`: a frozen copy of the lake that plain DuckDB attaches from anywhere."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omicslake.catalog import extension_file
from omicslake.publish import publish
from tests.conftest import write_gz

pytestmark = pytest.mark.slow  # published lakes, PostgreSQL and HTTPS: not in `make test-fast`

GENES = "gene_id\tsymbol\tscore\n1\tA1BG\t0.5\n2\tA2M\t1.0\n3\tNAT1\t1.25\n"

CONSUMER = """
import json, sys
import duckdb  # plain DuckDB and its ducklake extension: no omicslake
con = duckdb.connect(config={"autoinstall_known_extensions": False})
for path in sys.argv[3:]:
    con.load_extension(path)
con.execute(f"ATTACH 'ducklake:{sys.argv[1]}' AS lake (READ_ONLY)")
print(json.dumps([con.execute(sql).fetchall() for sql in json.loads(sys.argv[2])], default=str))
"""


def consume(catalog: str, queries: list[str], cwd: Path, extensions=("ducklake",)) -> list:
    """Run `queries` in a fresh Python that knows nothing of omicslake, from `cwd`."""
    files = [str(extension_file(name)) for name in extensions]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    run = subprocess.run(
        [sys.executable, "-c", CONSUMER, catalog, json.dumps(queries), *files],
        capture_output=True, text=True, cwd=cwd, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return [[tuple(row) for row in rows] for rows in json.loads(run.stdout)]


def two_loads(lake, tmp_path):
    path = write_gz(tmp_path / "src" / "genes.tsv.gz", GENES)
    first = lake.load("genes", {"url": f"file://{path}"})
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    second = lake.load("genes", {"url": f"file://{path}"})
    return first, second


def test_a_published_lake_attaches_with_plain_duckdb_from_anywhere(lake, tmp_path):
    first, second = two_loads(lake, tmp_path)
    out = publish(lake.catalog, lake.data_path, tmp_path / "share" / "v1")
    assert out["snapshot"] == second.snapshot_id and out["copied"] == 0
    originals = {p.stat().st_ino for p in Path(lake.data_path).rglob("*.parquet")}
    published = {p.stat().st_ino for p in (tmp_path / "share" / "v1" / "data").rglob("*.parquet")}
    assert published == originals  # hard links: zero bytes copied
    (tmp_path / "elsewhere").mkdir()
    rows = consume(
        str(tmp_path / "share" / "v1" / "omicslake.ducklake"),
        [
            "SELECT count(*), sum(score) FROM lake.http.genes",
            f"SELECT count(*) FROM lake.http.genes AT (VERSION => {first.snapshot_id})",
            "SELECT dataset, snapshot_id FROM lake.omicslake.loads ORDER BY snapshot_id",
        ],
        tmp_path / "elsewhere",
    )
    assert rows == [[(4, 4.75)], [(3,)], [("http.genes", first.snapshot_id), ("http.genes", second.snapshot_id)]]
    assert lake.query("SELECT count(*) FROM lake.http.genes") == [(4,)]  # the live lake is untouched


def test_a_postgres_lake_publishes_and_its_data_can_be_served_over_https(pg_lake, tmp_path, http_server):  # noqa: F811
    two_loads(pg_lake, tmp_path)
    data = Path(pg_lake.data_path)
    for path in data.rglob("*"):
        if path.is_file():
            http_server.add(f"/lake/data/{path.relative_to(data).as_posix()}", path.read_bytes())
    out = publish(pg_lake.catalog, pg_lake.data_path, tmp_path / "web", data_url=http_server.url("/lake/data/"))
    assert not (tmp_path / "web" / "data").exists()  # nothing copied: readers fetch from the URL
    rows = consume(
        out["catalog"], ["SELECT count(*), sum(score) FROM lake.http.genes"], tmp_path, ("ducklake", "httpfs")
    )
    assert rows == [[(4, 4.75)]]
    assert any(r["path"].startswith("/lake/data/http/genes/") for r in http_server.requests)


def test_publish_from_the_command_line_prints_the_attach_statement(lake, tmp_path):
    import yaml

    two_loads(lake, tmp_path)
    config = {"lake": {"catalog": lake.catalog, "data_path": lake.data_path}, "staging": str(lake.staging)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml"), "publish", "pub"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"ATTACH 'ducklake:{tmp_path / 'pub' / 'omicslake.ducklake'}' AS lake (READ_ONLY);" in run.stdout


def test_publishing_into_the_live_lake_is_refused_and_changes_nothing(lake, tmp_path):
    import yaml

    two_loads(lake, tmp_path)
    config = {"lake": {"catalog": lake.catalog, "data_path": lake.data_path}, "staging": str(lake.staging)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    live = Path(lake.catalog).read_bytes()
    files = sorted(Path(lake.data_path).rglob("*"))
    for dest, clash in [
        (Path(lake.catalog).parent, "the folder of the live catalog"),
        (Path(lake.data_path) / "pub", "inside the live data path"),
    ]:
        run = subprocess.run(
            [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml"), "publish", str(dest)],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 1
        assert (
            run.stderr.startswith(f"omicslake: publish destination {dest} is {clash}") and run.stderr.count("\n") == 1
        )
    assert Path(lake.catalog).read_bytes() == live and sorted(Path(lake.data_path).rglob("*")) == files


def test_a_postgres_lake_cannot_publish_over_its_own_data(tmp_path):
    import pytest

    from omicslake.errors import OmicslakeError

    catalog = "postgres:dbname=omicslake host=127.0.0.1"  # refused before any connection
    with pytest.raises(OmicslakeError, match="is the parent of data path"):
        publish(catalog, f"{tmp_path}/data/", tmp_path)
    assert not (tmp_path / "data").exists()
