"""Every error a user can cause ends the job with one line, `omicslake: <dataset>: ...: <cause>; fix:
<what to do>`, and no traceback: one case per class, each through the real failing path (the
`omicslake` command in a subprocess: config loading, then the job as the workflow runs it, jobs.run).
Config errors under `snakemake` are in test_workflow.py; S3 credentials in test_s3.py; the
PostgreSQL password in test_postgres.py; keep-going in test_http.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from standins.servers import free_ports
from tests.conftest import KAGGLE_KEY as KEY
from tests.conftest import REPO, workflow_config, write_gz


def omicslake(workdir, config, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The `omicslake` command on `config` (a dict, or the text of the config file)."""
    config_file = workdir / "config.yaml"
    config_file.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "omicslake.cli", "--config", str(config_file), *args],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def the_line(result: subprocess.CompletedProcess, where: str, cause: str, fix: str) -> str:
    """The run failed with exactly one `omicslake:` line naming `where` (the dataset, or the config
    key or file), then the cause and the fix (regular expressions), and printed no traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("omicslake: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = lines[0]
    assert line.startswith(f"omicslake: {where}"), line
    said, _, what_to_do = line.partition("; fix: ")
    assert re.search(cause, said), line
    assert re.search(fix, what_to_do), line
    print(line)  # shown with -s: the lines as users see them
    return line


def kaggle_config(tmp_path, server):
    return workflow_config(
        tmp_path, {"kaggle": {"api_endpoint": server.endpoint, "datasets": [{"ref": "owner/atlas"}]}}
    )


# --- config --------------------------------------------------------------------------------------


def test_config_typo_names_the_key_and_the_fix(tmp_path):
    config = workflow_config(tmp_path, {"http": [{"name": "a", "url": "file:x.csv", "null_value": ["-"]}]})
    result = omicslake(tmp_path, config, "attach")
    the_line(
        result,
        "config key sources.http[0].null_value",
        "unknown key",
        r"did you mean 'null_values'\? remove or rename it \(known here: name, url",
    )


def test_config_wrong_type_names_the_key_and_the_fix(tmp_path):
    result = omicslake(tmp_path, workflow_config(tmp_path, {}, retries="many"), "attach")
    the_line(result, "config key download.retries", "'many' is not an integer", "set it to an integer")


def test_a_config_error_shows_no_password_nor_query_string():
    from omicslake.config import validate
    from omicslake.errors import ConfigError

    for url in ("htps://alice:pw-s3cr3t@host/x.csv", "htps://host/x.csv?token=pw-s3cr3t"):
        config = workflow_config(Path("w"), {"http": [{"name": "a", "url": url}]})
        with pytest.raises(ConfigError, match="config key sources.http") as raised:
            validate(config, REPO / "config" / "schema.yaml")
        assert "pw-s3cr3t" not in str(raised.value) and "host/x.csv" in str(raised.value)


def test_config_file_that_is_not_yaml_names_the_line(tmp_path):
    result = omicslake(tmp_path, "sources:\n  http:\n    - name: a\n   url: [\n", "attach")
    the_line(result, "config file ", r"config\.yaml is not YAML at line \d+, column \d+", "correct it there")


def test_config_file_missing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "omicslake.cli", "--config", "nowhere.yaml", "attach"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    the_line(result, "config file nowhere.yaml", "not found", "pass --configfile <file>")


# --- credentials ---------------------------------------------------------------------------------


def test_missing_kaggle_credentials(tmp_path, kaggle_api, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result = omicslake(tmp_path, kaggle_config(tmp_path, kaggle_api), "ingest", "kaggle.owner__atlas")
    the_line(result, "kaggle.owner__atlas: ", "no Kaggle credentials", "set KAGGLE_API_TOKEN, or KAGGLE_USERNAME")


def test_wrong_kaggle_credentials(tmp_path, kaggle_api, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "not-the-key")
    result = omicslake(tmp_path, kaggle_config(tmp_path, kaggle_api), "ingest", "kaggle.owner__atlas")
    line = the_line(
        result,
        "kaggle.owner__atlas: ",
        "Kaggle GetDataset owner/atlas failed: HTTP 401",
        "the credentials were refused: set KAGGLE_API_TOKEN",
    )
    assert "not-the-key" not in line and KEY not in line


def test_http_login_required(tmp_path, http_server):
    url = http_server.add("/private.csv", b"a\n1\n", login="bob:pw")
    result = omicslake(tmp_path, workflow_config(tmp_path, {"http": [{"name": "x", "url": url}]}), "ingest", "http.x")
    the_line(
        result,
        "http.x: http://127.0.0.1:",
        "HTTP 401",
        "the server wants a login: set DOWNLOAD__127_0_0_1__USERNAME and DOWNLOAD__127_0_0_1__PASSWORD",
    )


# --- unknown accession ---------------------------------------------------------------------------


def test_unknown_geo_series(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    config = workflow_config(tmp_path, {"geo": {"base_url": mirror.as_uri(), "series": ["GSE999999"]}})
    result = omicslake(tmp_path, config, "ingest", "geo.GSE999999")
    the_line(
        result,
        "geo.GSE999999: file://",
        "/series/GSE999nnn/GSE999999/soft/: not found",
        r"check that GSE999999 exists \(https://www\.ncbi\.nlm\.nih\.gov/geo/query/acc\.cgi\?acc=GSE999999\)",
    )


def test_unknown_zenodo_record(tmp_path, http_server):
    config = workflow_config(tmp_path, {"zenodo": {"api_url": http_server.url("/api"), "records": [{"id": 999}]}})
    result = omicslake(tmp_path, config, "ingest", "zenodo.record_999")
    the_line(
        result, "zenodo.record_999: ", r"Zenodo has no record 999 \(HTTP 404\)", "check the id .* in sources.zenodo"
    )


def test_unknown_kaggle_dataset(tmp_path, kaggle_api):
    result = omicslake(tmp_path, kaggle_config(tmp_path, kaggle_api), "ingest", "kaggle.owner__atlas")
    the_line(
        result,
        "kaggle.owner__atlas: ",
        "Kaggle GetDataset owner/atlas failed: HTTP 404",
        r"check the ref 'owner/atlas' \(owner/slug\) and version in sources.kaggle.datasets",
    )


# --- checksum, schema conflict, server down ------------------------------------------------------


def test_checksum_mismatch(tmp_path, http_server):
    url = http_server.add("/ok.csv", b"a\n1\n")
    config = workflow_config(tmp_path, {"http": [{"name": "x", "url": url, "sha256": "0" * 64}]})
    result = omicslake(tmp_path, config, "ingest", "http.x")
    the_line(result, "http.x: http://127.0.0.1:", "sha256 mismatch: expected 0{64}, got", "run again; if it fails")


def test_schema_conflict(tmp_path, lake):
    """A new version of a table whose column type conflicts with rows the dataset does not own."""
    from omicslake.catalog import open_lake

    path = write_gz(tmp_path / "genes.tsv.gz", "gene_id\tsymbol\n1\tTP53\n")
    cfg = {"name": "genes", "url": path.as_uri()}
    lake.load("genes", cfg)
    with open_lake(lake.catalog, lake.data_path) as con:  # rows of another origin
        con.execute("INSERT INTO lake.http.genes VALUES (99, 'OTHER')")
    write_gz(path, "gene_id\tsymbol\nG1\tTP53\n")  # gene_id: BIGINT -> VARCHAR
    lake.ingest("genes", cfg)
    result = omicslake(tmp_path, workflow_config(tmp_path, {"http": [cfg]}), "register", "http.genes")
    the_line(
        result,
        "http.genes: ",
        "schema conflict in column 'gene_id': VARCHAR in the file, BIGINT in lake table http.genes",
        "give the table another name in the config .* drop table http.genes .* and run again",
    )


def test_server_down(tmp_path):
    url = f"http://127.0.0.1:{free_ports(1)[0]}/x.csv"  # nothing listens there
    config = workflow_config(tmp_path, {"http": [{"name": "x", "url": url}]}, retries=1)
    result = omicslake(tmp_path, config, "ingest", "http.x")
    the_line(
        result,
        f"http.x: {url}: ",
        r"cannot reach server after 2 attempts: \[Errno 111\] Connection refused$",
        "server is up",
    )


# --- the lake catalog ----------------------------------------------------------------------------


def claim_storage_version(catalog: Path, version: int) -> None:
    """Rewrite a DuckDB file's main header as a newer DuckDB writes it: the storage version after
    the `DUCK` magic, and the header's checksum (a multiply-xor over its uint64 words after the
    checksum itself, DuckDB's `Checksum`)."""
    import struct

    data = bytearray(catalog.read_bytes())
    assert data[8:12] == b"DUCK"
    data[12:20] = struct.pack("<Q", version)
    checksum = 5381
    for (word,) in struct.iter_unpack("<Q", bytes(data[8:4096])):
        checksum ^= (word * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    data[0:8] = struct.pack("<Q", checksum)
    catalog.write_bytes(bytes(data))


def test_a_catalog_written_by_a_newer_duckdb_is_one_line_not_a_wait(tmp_path, lake):
    genes = write_gz(tmp_path / "genes.tsv.gz", "id\tsymbol\n1\tA1BG\n")
    lake.load("genes", {"url": f"file://{genes}"})
    config = {"lake": {"catalog": lake.catalog, "data_path": lake.data_path}}
    claim_storage_version(Path(lake.catalog), 99)
    result = omicslake(tmp_path, config, "query", "SELECT 1")
    the_line(result, "the lake catalog", r"written by a newer DuckDB \(storage version 99; DuckDB 1\.5\.5 here reads",
             r"DuckDB version that wrote it")  # fmt: skip

    Path(lake.catalog).write_bytes(Path(lake.catalog).read_bytes()[:4096] + b"\0" * 4096)  # damaged, not locked
    result = omicslake(tmp_path, config, "query", "SELECT 1")
    assert result.returncode == 1 and "another DuckDB session" not in result.stderr, result.stderr
