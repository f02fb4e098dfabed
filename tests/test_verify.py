"""`omicslake verify`: a healthy lake passes; each kind of damage is named, file by file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from omicslake.verify import verify
from tests.conftest import write_gz

pytestmark = pytest.mark.slow  # whole lakes checked: not in `make test-fast`

GENES = "gene_id\tsymbol\tscore\n1\tA1BG\t0.5\n2\tA2M\t1.0\n3\tNAT1\t1.25\n"


@pytest.fixture
def loaded(lake, tmp_path):
    """A lake with a replaced load (time travel needs the old file and its delete file) and a second dataset."""
    path = write_gz(tmp_path / "src" / "genes.tsv.gz", GENES)
    lake.load("genes", {"url": f"file://{path}"})
    write_gz(path, GENES + "4\tNAT2\t2.0\n")
    os.utime(path, (1, 1))
    lake.load("genes", {"url": f"file://{path}"})
    lake.load("more", {"url": f"file://{write_gz(tmp_path / 'src' / 'more.tsv.gz', GENES)}"})
    config = {"lake": {"catalog": lake.catalog, "data_path": lake.data_path}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return lake


def cli(tmp_path, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml"), "verify", *args]
    return subprocess.run(command, capture_output=True, text=True)


def data_files(lake) -> list[Path]:
    return sorted(p for p in Path(lake.data_path).rglob("*.parquet") if "omicslake" not in p.parts)


def test_a_healthy_lake_passes(loaded, tmp_path):
    report = verify(loaded.catalog, loaded.data_path)
    assert report.ok and report.files == 3  # both loads of genes (time travel reads the first) and more
    run = cli(tmp_path)
    assert run.returncode == 0 and run.stdout.strip().endswith("files checked: ok"), run.stderr


def test_each_damage_is_named_and_fails_the_check(loaded, tmp_path):
    first, second, third = data_files(loaded)[:3]
    first.unlink()  # missing
    with open(second, "ab") as f:  # grown
        f.write(b"trailing bytes")
    stray = Path(loaded.data_path, "http", "genes", "left-by-a-killed-run.parquet")
    stray.write_bytes(third.read_bytes())
    with duckdb.connect(loaded.catalog) as catalog:  # a catalog that disagrees with a footer
        catalog.execute("UPDATE ducklake_data_file SET record_count = record_count + 1 WHERE path = ?", [third.name])
    run = cli(tmp_path, "--json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    problems = {p["file"]: p["problem"] for p in report["problems"]}
    assert problems[str(first)] == "missing"
    assert problems[str(second)].startswith(f"size {second.stat().st_size} bytes, the catalog says")
    assert problems[str(third)] == "footer holds 3 rows, the catalog says 4"
    assert report["unknown"] == [str(stray)]
    text = cli(tmp_path)
    assert text.returncode == 1 and f"{first}: missing" in text.stdout and f"{stray}: not in the catalog" in text.stdout
