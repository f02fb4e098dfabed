"""The run's registrar: one process registers many loads on one attach, each load its own snapshot,
receipt and outcome; a failed load is that dataset's alone; a waiting reader gets the lake between
two loads; a dead registrar fails only the load it held."""

import json
import os
import subprocess
import sys

import pytest

from omicslake import registrar
from omicslake.jobs import Outcome
from tests.conftest import REPO, write_gz

pytestmark = pytest.mark.slow  # registrar processes: not in `make test-fast`

GENES = "gene_id\tsymbol\tscore\n1\tTP53\t0.5\n2\tBRCA1\t1.25\n3\tEGFR\t1.0\n"


def staged(lake, tmp_path, names: list[str]) -> dict[str, dict]:
    """Ingest `names` (tables of 3 rows) the way ingest jobs do; the registrar request of each."""
    requests = {}
    for name in names:
        path = write_gz(tmp_path / "src" / f"{name}.tsv.gz", GENES)
        lake.ingest(name, {"name": name, "url": path.as_uri()})
        folder = lake.folder(name)
        requests[name] = {
            "catalog": lake.catalog, "data_path": lake.data_path, "s3": [], "dataset": f"http.{name}",
            "manifest": str(folder / "manifest.json"), "receipt": str(folder / "receipt.json"),
            "log": str(tmp_path / "logs" / f"{name}.log"), "folder": str(folder), "step": "register",
        }  # fmt: skip
    return requests


def test_one_process_registers_many_loads_each_in_its_own_snapshot(lake, tmp_path):
    requests = staged(lake, tmp_path, ["a", "b", "c", "d"])
    with open(lake.folder("b") / "manifest.json") as f:  # b: its staged file is gone (a failure of b alone)
        os.unlink(json.load(f)["files"][0]["path"])
    client = registrar.Registrar()
    failed = []
    try:
        for name, request in requests.items():
            try:
                client.register(request)
            except registrar.RegistrationFailed as e:
                failed.append((name, str(e)))
        pid = client.process.pid
    finally:
        client.close()
    assert [name for name, _ in failed] == ["b"] and "staged file is missing" in failed[0][1]
    loads = lake.query("SELECT dataset, snapshot_id FROM lake.omicslake.loads ORDER BY snapshot_id")
    assert [d for d, _ in loads] == ["http.a", "http.c", "http.d"]
    assert len({s for _, s in loads}) == 3  # one snapshot per load
    for name in "acd":
        assert lake.query(f"SELECT count(*) FROM lake.http.{name}") == [(3,)]
        assert (lake.folder(name) / "receipt.json").exists()
        assert f"registrar {pid}" in (tmp_path / "logs" / f"{name}.log").read_text()  # the same process
    outcomes = {name: Outcome.read_all(lake.folder(name))[-1] for name in "abcd"}
    assert [outcomes[n].ok for n in "abcd"] == [True, False, True, True]
    assert "staged file is missing" in outcomes["b"].cause
    # every table protected from compaction, the last one too (set when the registrar let the lake go)
    options = lake.query(
        "SELECT count(*) FROM __ducklake_metadata_lake.ducklake_metadata WHERE key = 'auto_compact' "
        "AND value = 'false' AND scope = 'table'"
    )
    assert options == [(3,)]


def test_a_waiting_reader_gets_the_lake_between_two_loads(lake, tmp_path):
    """The registrar is never idle here (each load's request follows its reply at once), so without
    the reader's wait mark it would keep the lake until its last load."""
    requests = staged(lake, tmp_path, [f"t{i}" for i in range(12)])
    client = registrar.Registrar()
    reader, done_after = None, None  # the load after which the reader was seen done
    try:
        for i, request in enumerate(requests.values()):
            client.register(request)
            if reader and done_after is None and reader.poll() is not None:
                done_after = i
            if i == 0:  # the lake exists, the registrar holds it: a reader in another process
                code = (
                    "import sys; sys.path.insert(0, sys.argv[1]);"
                    "from omicslake.catalog import open_lake\n"
                    "with open_lake(sys.argv[2], sys.argv[3], read_only=True, wait_seconds=60) as con:\n"
                    "    print(con.execute('SELECT count(*) FROM lake.omicslake.loads').fetchone()[0])"
                )
                reader = subprocess.Popen(
                    [sys.executable, "-c", code, str(REPO), lake.catalog, lake.data_path],
                    stdout=subprocess.PIPE,
                    text=True,
                )
    finally:
        client.close()
    assert reader.wait(60) == 0
    assert done_after is not None and done_after < 11  # it got in while loads were still coming
    assert 1 <= int(reader.stdout.read()) < 12


def test_a_dead_registrar_fails_only_the_load_it_held(lake, tmp_path, monkeypatch):
    requests = staged(lake, tmp_path, ["a", "b", "c"])
    monkeypatch.setenv("OMICSLAKE_KILL_AT", "commit#2")  # the registrar dies inside its second load
    client = registrar.Registrar()
    outcomes = {}
    try:
        for name, request in requests.items():
            try:
                client.register(request)
                outcomes[name] = "ok"
            except registrar.RegistrationFailed as e:
                outcomes[name] = str(e)
    finally:
        client.close()
    assert outcomes["a"] == "ok" and outcomes["c"] == "ok"  # c: a new registrar
    assert "http.b: the registration process died (exit -9" in outcomes["b"]
    assert lake.query("SELECT dataset FROM lake.omicslake.loads ORDER BY ALL") == [("http.a",), ("http.c",)]
    assert Outcome.read_all(lake.folder("b"))[-1].ok is None  # killed outright: unfinished, as a job
    monkeypatch.delenv("OMICSLAKE_KILL_AT")
    lake.register("b")  # the next run's registration completes it
    assert lake.query("SELECT count(*) FROM lake.http.b") == [(3,)]


def test_an_ingest_that_failed_on_a_slurm_node_is_reported_by_its_registration(tmp_path):
    """On a node a failed ingest leaves its line as the job's output (a group job carries on with its
    other members); registration reports it for that dataset and removes it, so the next run ingests
    the dataset again."""
    from concurrent.futures import ThreadPoolExecutor

    from omicslake import jobs
    from omicslake.errors import DatasetError

    def checksum_mismatch():
        raise DatasetError("http.x", "sha256 mismatch", "http://host/x.csv", fix="check the checksum")

    def bug():
        raise ValueError("a bug\nin two lines")

    client, lines = registrar.Registrar(), {}
    for name, func in (("x", checksum_mismatch), ("y", bug)):
        folder = tmp_path / "staging" / "http" / name
        log, manifest = str(tmp_path / "logs" / f"{name}.log"), str(folder / "manifest.json")
        with ThreadPoolExecutor(1) as pool:  # not the main thread: no SIGTERM handler left in pytest
            run = pool.submit(
                jobs.run, log, func, outcome=(folder, "ingest_http"), failure_to=(manifest, f"http.{name}")
            )
            assert run.result() is None  # no exit: the job succeeds
        assert Outcome.read_all(folder)[-1].ok is False
        request = {"dataset": f"http.{name}", "manifest": manifest, "folder": str(folder), "log": log}
        try:
            client.register(request)
            raise AssertionError("no failure")
        except registrar.RegistrationFailed as e:
            lines[name] = str(e)
        assert not os.path.exists(manifest)  # the next run ingests it again
    assert client.process is None  # nothing was sent to a registrar: nothing registered
    assert lines["x"] == "http.x: http://host/x.csv: sha256 mismatch; fix: check the checksum"
    assert lines["y"] == f"http.y: unexpected ValueError: a bug (see {tmp_path / 'logs' / 'y.log'})"
    assert "Traceback" in (tmp_path / "logs" / "y.log").read_text()
