"""`omicslake query` and `omicslake attach`: the lake is the default catalog."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import write_gz

pytestmark = pytest.mark.slow  # the omicslake command on real lakes: not in `make test-fast`

GENES = "gene_id\tsymbol\n1\tA1BG\n2\tA2M\n"


def test_tables_are_named_without_the_lake_prefix(lake, tmp_path):
    lake.load("genes", {"url": f"file://{write_gz(tmp_path / 'genes.tsv.gz', GENES)}"})
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"lake": {"catalog": lake.catalog, "data_path": lake.data_path}})
    )
    omicslake = [sys.executable, "-m", "omicslake.cli", "--config", str(tmp_path / "config.yaml")]
    for sql in ["SELECT count(*) AS n FROM http.genes", "SELECT count(*) AS n FROM lake.http.genes"]:
        shown = subprocess.run([*omicslake, "query", sql], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split()[-3] == "2", shown.stdout

    attach = subprocess.run([*omicslake, "attach"], capture_output=True, text=True).stdout
    assert "READ_ONLY" in attach and attach.rstrip().endswith("USE lake;")
