import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from omicslake.catalog import open_lake
from omicslake.ingest import ingest, ingest_chunk, plan_chunks
from omicslake.register import register
from omicslake.sources import SOURCES
from standins.servers import HTTPServer, KaggleServer, PostgresServer, S3Server

REPO = Path(__file__).resolve().parent.parent
FAST = {"retries": 3, "backoff_seconds": 0.05, "timeout_seconds": 10}
# Every rule one attempt, whatever its `retries:` (a run that is meant to fail need not fail three times):
# --preemptible-retries is Snakemake's one command-line override of a rule's retries (Rule.restart_times;
# nothing else reads it outside the Google Life Sciences executor). `--preemptible-rules` alone: all rules.
NO_RETRIES = ("--preemptible-rules", "--preemptible-retries", "0")


@pytest.fixture
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, s3_server):
    """The S3 stand-in's key in the environment, as on a machine with AWS credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(scope="session")
def census(tmp_path_factory) -> str:
    """A census in the census's layout (standins/census.py); cases that change it copy it first."""
    from standins.census import build_census

    return build_census(tmp_path_factory.mktemp("census") / "soma")


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def pg_lake(postgres, tmp_path, monkeypatch):
    """A lake whose catalog is a fresh PostgreSQL database; its data on local disk."""
    import psycopg

    monkeypatch.setenv("PGPASSWORD", postgres.PASSWORD)
    database = f"lake_{os.getpid()}_{time.monotonic_ns()}"
    admin = postgres.catalog.removeprefix("postgres:").replace("dbname=omicslake", "dbname=postgres")
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f"CREATE DATABASE {database}")
    lake = Lake(tmp_path)
    lake.catalog = postgres.catalog.replace("dbname=omicslake", f"dbname={database}")
    return lake


KAGGLE_KEY = "kaggle-key-s3cr3t-0042"


@pytest.fixture
def kaggle_api(monkeypatch, tmp_path):
    """Kaggle's API stand-in, with the key of user alice in the environment and no token files."""
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", KAGGLE_KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-json"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle/access_token of the machine's
    server = KaggleServer(login=("alice", KAGGLE_KEY))
    yield server
    server.stop()


@pytest.fixture
def http_server():
    server = HTTPServer()
    yield server
    server.stop()


class Lake:
    """A lake and staging area in a temp folder, driven in-process like the workflow drives it."""

    def __init__(self, root: Path):
        self.root = root
        self.catalog = str(root / "lake" / "omicslake.ducklake")
        self.data_path = str(root / "lake" / "data") + "/"
        self.staging = root / "staging"
        self.s3: list[dict] = []  # S3 locations the lake reads (`sources.s3_locations`)
        self.lake_s3: dict | None = None  # `lake.s3` of a data path on S3

    def folder(self, name: str, source: str = "http") -> Path:
        return self.staging / source / name

    def ingest(self, name: str, cfg: dict, source: str = "http", settings: dict | None = None):
        """Ingest as the workflow's jobs do; a chunked source: plan, each chunk, then gather."""
        folder, settings = self.folder(name, source), settings or FAST
        chunks = None
        if SOURCES[source].chunked:
            plan_chunks(source, name, cfg, folder / "chunks.json", settings)
            count = len(json.loads((folder / "chunks.json").read_text())["chunks"])
            chunks = [folder / "chunk" / str(i) / "manifest.json" for i in range(count)]
            for i, manifest in enumerate(chunks):
                ingest_chunk(source, name, cfg, i, folder / "chunks.json", manifest, settings, self.lake)
        return ingest(source, name, cfg, folder / "manifest.json", settings, chunks, self.lake)

    @property
    def lake(self) -> dict:
        """The config's lake block."""
        return {"catalog": self.catalog, "data_path": self.data_path, "s3": self.lake_s3}

    def register(self, name: str, source: str = "http"):
        folder = self.folder(name, source)
        return register(folder / "manifest.json", self.catalog, self.data_path, folder / "receipt.json", self.s3)

    def load(self, name: str, cfg: dict, source: str = "http"):
        self.ingest(name, cfg, source)
        return self.register(name, source)

    def query(self, sql: str, params=None) -> list[tuple]:
        with open_lake(self.catalog, self.data_path, read_only=True, s3=self.s3) as con:
            return con.execute(sql, params or []).fetchall()

    def snapshots(self) -> int:
        return self.query("SELECT count(*) FROM lake.snapshots()")[0][0]


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path)


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


def run_snakemake(
    workdir: Path, config: dict, *args: str, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real workflow as a subprocess on `config`, in `workdir`."""
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_file),
        "--replace-workflow-config",
        "--cores",
        "2",
        *args,
    ]
    env = {
        **(env or os.environ),
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def geo_tree(tmp_path):
    from standins import geo_tree

    return geo_tree.build(tmp_path / "mirror")


@pytest.fixture
def ftp_server(geo_tree):
    from standins.servers import FTPServer

    server = FTPServer(geo_tree.parent)
    yield server
    server.stop()


def workflow_config(workdir: Path, sources: dict, **download) -> dict:
    """A workflow config with its lake, staging and logs in `workdir`, and fast download retries."""
    return {
        "lake": {"catalog": str(workdir / "lake" / "omicslake.ducklake"), "data_path": str(workdir / "lake" / "data")},
        "staging": str(workdir / "staging"),
        "logs": str(workdir / "logs"),
        "download": {"retries": 2, "backoff_seconds": 0.05, "timeout_seconds": 10, **download},
        "sources": sources,
    }


def demo_http_config() -> dict:
    """config/demo.yaml's lake, staging and logs with only the sample tables of demo/data (gene_info,
    samples, expression): nothing to start, nothing failing on purpose (the demo's other sources
    need demo/run.py's stand-ins)."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    gene_info = next(entry for entry in config["sources"]["http"] if entry["name"] == "gene_info")
    samples = {"name": "samples", "url": "file:demo/data/samples.csv"}
    expression = {"name": "expression", "url": "file:demo/data/expression.jsonl"}
    return {**config, "sources": {"http": [gene_info, samples, expression]}}


def probe_report(workdir: Path, source: str) -> dict:
    """What the last probe of `source` said of each dataset."""
    reports = sorted((workdir / "staging" / source / "_probes").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())["datasets"]


def started_jobs(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, dataset name) of every ingest and register job a snakemake run started, sorted."""
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: .*name=(\w+)", result.stderr, re.M)
    return sorted((rule, name) for rule, name in jobs if rule != "all")
