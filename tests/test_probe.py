"""The probe job: one bounded pass over a source's datasets that rewrites only the stamps that changed."""

import json
import logging
import os
import time

import pytest

from omicslake.probe import Stamp, probe
from omicslake.sources import geo
from standins.servers import Resource
from tests.conftest import FAST


def entries(http_server, n: int) -> dict:
    return {f"t{i}": {"name": f"t{i}", "url": http_server.add(f"/t{i}.csv", b"a,b\n%d,2\n" % i)} for i in range(n)}


def run(tmp_path, source: str, datasets: dict) -> dict:
    stamps = {name: str(tmp_path / "staging" / source / name / "stamp.json") for name in datasets}
    return probe(source, datasets, stamps, tmp_path / "staging" / source / "_probes" / f"{time.time_ns()}.json", FAST)


def mtimes(tmp_path, source: str) -> dict:
    return {p.parent.name: p.stat().st_mtime_ns for p in (tmp_path / "staging" / source).glob("*/stamp.json")}


def test_http_stamps_are_rewritten_only_when_the_upstream_or_the_config_changed(http_server, tmp_path):
    datasets = entries(http_server, 3)
    assert run(tmp_path, "http", datasets) == {"t0": "new", "t1": "new", "t2": "new"}
    before = mtimes(tmp_path, "http")
    assert run(tmp_path, "http", datasets) == {"t0": "unchanged", "t1": "unchanged", "t2": "unchanged"}
    assert mtimes(tmp_path, "http") == before
    assert {r["status"] for r in http_server.requests[-3:]} == {304}  # conditional GETs, no bodies

    http_server.resources["/t1.csv"] = Resource(b"a,b\n1,3\n", last_modified=time.time() + 5)
    datasets["t2"] = {**datasets["t2"], "null_values": ["-"]}
    assert run(tmp_path, "http", datasets) == {"t0": "unchanged", "t1": "changed", "t2": "changed"}
    after = mtimes(tmp_path, "http")
    assert after["t0"] == before["t0"] and after["t1"] > before["t1"] and after["t2"] > before["t2"]
    stamp = Stamp.read(tmp_path / "staging/http/t1/stamp.json")
    assert stamp.upstream[0].etag == http_server.resources["/t1.csv"].etag


def test_a_failed_probe_rewrites_the_stamp_so_that_ingest_reports_it(http_server, tmp_path):
    datasets = entries(http_server, 2)
    run(tmp_path, "http", datasets)
    del http_server.resources["/t0.csv"]
    outcomes = run(tmp_path, "http", datasets)
    assert outcomes["t1"] == "unchanged"
    url = f"http://127.0.0.1:{http_server.port}/t0.csv"
    assert outcomes["t0"].startswith(f"failed: http.t0: {url}: HTTP 404 Not Found; fix: check the URL")
    assert Stamp.read(tmp_path / "staging/http/t0/stamp.json").error == outcomes["t0"].removeprefix("failed: ")
    assert run(tmp_path, "http", datasets)["t0"].startswith("failed")  # until it is fixed, every run


def test_the_pool_is_bounded_by_the_registry(http_server, tmp_path):
    datasets = entries(http_server, 12)
    for resource in http_server.resources.values():
        resource.stall = [0.2]
    start = time.monotonic()
    run(tmp_path, "http", datasets)
    assert http_server.max_in_flight == 4  # SOURCES["http"].downloads
    assert time.monotonic() - start >= 3 * 0.2


def test_geo_probe_lists_folders_and_downloads_nothing(ftp_server, geo_tree, tmp_path):
    datasets = geo.datasets({"base_url": ftp_server.url("geo"), "series": ["GSE781"], "platforms": ["GPL97"]})
    assert run(tmp_path, "geo", datasets) == {"GSE781": "new", "GPL97": "new"}
    assert run(tmp_path, "geo", datasets) == {"GSE781": "unchanged", "GPL97": "unchanged"}
    os.utime(geo_tree / "platforms/GPLnnn/GPL97/annot/GPL97.annot.gz", (1e9, 1e9))  # GEO updated it
    assert run(tmp_path, "geo", datasets) == {"GSE781": "unchanged", "GPL97": "changed"}
    assert not [c for c in ftp_server.commands if c[0] == "RETR"]
    stamp = json.loads((tmp_path / "staging/geo/GSE781/stamp.json").read_text())
    assert sorted(u["url"].rsplit("/", 1)[1] for u in stamp["upstream"]) == [
        "GSE781-GPL96_series_matrix.txt.gz",
        "GSE781-GPL97_series_matrix.txt.gz",
        "GSE781_RAW.tar",
        "filelist.txt",
    ]


def test_a_probe_logs_in_once_per_pool_thread(ftp_server, tmp_path):
    datasets = geo.datasets(
        {
            "base_url": ftp_server.url("geo"),
            "series": ["GSE781", "GSE2000", "GSE105845"],
            "datasets": ["GDS507"],
            "platforms": ["GPL97"],
        }
    )
    assert set(run(tmp_path, "geo", datasets).values()) == {"new"}
    commands = [c[0] for c in ftp_server.commands]
    assert commands.count("MLSD") >= 9 and commands.count("USER") <= 2  # SOURCES["geo"].downloads threads


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_credentials_come_from_the_environment_and_go_nowhere_else(
    scheme, lake, http_server, geo_tree, monkeypatch, tmp_path, caplog
):
    from standins.servers import FTPServer

    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Pa55"
    monkeypatch.setenv("DOWNLOAD__127_0_0_1__USERNAME", "analyst")
    monkeypatch.setenv("DOWNLOAD__127_0_0_1__PASSWORD", secret)
    if scheme == "http":
        url = http_server.add("/private.csv", b"a,b\n1,2\n", login=f"analyst:{secret}")
        lake.load("private", {"name": "private", "url": url})
        assert http_server.hits("/private.csv")[0]["headers"]["Authorization"].startswith("Basic ")
    else:
        server = FTPServer(geo_tree.parent, login=("analyst", secret))
        try:
            cfg = geo.datasets({"base_url": server.url("geo"), "platforms": ["GPL97"]})["GPL97"]
            lake.load("GPL97", cfg, source="geo")
        finally:
            server.stop()
        assert ("USER", "analyst") in server.commands
    assert lake.query("SELECT count(*) FROM lake.omicslake.upstream") == [(1,)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path  # manifests, receipts, the catalog, data
    assert secret not in caplog.text
