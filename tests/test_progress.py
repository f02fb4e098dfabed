"""Progress of downloads and unpacking: plain log lines in a batch job, a bar on a terminal."""

import datetime
import io
import json
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from omicslake import progress
from omicslake.archives import unpack
from omicslake.download import DownloadSettings, fetch, probe

REPO = Path(__file__).resolve().parent.parent
FAST = DownloadSettings(retries=3, backoff_seconds=0.05, timeout_seconds=10)
BODY = os.urandom(3 << 20)  # 3.1 MB
PERIODIC = re.compile(
    r"^(\S+ \S+) INFO omicslake\.progress: http\.gene_info: x\.bin: ([\d.]+) MB of 8\.4 MB \((\d+)%\), "
    r"[\d.]+ MB/s, ETA [\d.]+ s$"
)


def python(code: str, *args, **kw) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter from the worktree (its `omicslake`), as a workflow job runs."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, timeout=120, **kw)


@pytest.fixture
def logged(monkeypatch, caplog):
    """Progress lines of work done in this process, every update logged (stderr: not a terminal)."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="omicslake.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "omicslake.progress"]


def test_a_download_in_a_batch_job_logs_periodic_lines_without_carriage_returns(http_server, tmp_path):
    body = os.urandom(8 << 20)
    url = http_server.add("/x.bin", body, rate=16 << 20)  # ~0.5 s
    log = tmp_path / "ingest.log"
    job = """if True:
        import pathlib, sys
        from omicslake import jobs, progress
        from omicslake.download import DownloadSettings, fetch
        progress.INTERVAL = 0.1
        settings = DownloadSettings(retries=0, timeout_seconds=10)
        jobs.run(sys.argv[1], fetch, "http.gene_info", sys.argv[2], pathlib.Path(sys.argv[3]), settings)
    """
    started = time.monotonic()
    python(job, log, url, tmp_path / "download", check=True)
    elapsed = time.monotonic() - started
    assert (tmp_path / "download" / "x.bin").read_bytes() == body
    text = log.read_text()
    assert "\r" not in text
    lines = [m for line in text.splitlines() if (m := PERIODIC.match(line))]
    assert len(lines) >= 2, text
    done = [float(m[2]) for m in lines]
    assert done == sorted(done) and done[-1] <= 8.4
    stamps = [datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f") for m in lines]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 0.09, gaps  # at most one line per INTERVAL (log stamps are to the millisecond)
    assert len(lines) <= elapsed / 0.1 + 1
    assert re.search(r"progress: http\.gene_info: x\.bin: 8\.4 MB in [\d.]+ s \([\d.]+ MB/s\)$", text, re.M), text


def test_a_resumed_download_counts_the_bytes_already_there(http_server, tmp_path, logged):
    url = http_server.add("/x.bin", BODY)
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "x.bin.part").write_bytes(BODY[: 1 << 20])
    etag = http_server.resources["/x.bin"].etag
    (folder / "x.bin.part.json").write_text(json.dumps({"url": url, "etag": etag, "last_modified": None}))
    assert fetch("http.x", url, folder, FAST).path.read_bytes() == BODY
    assert http_server.hits("/x.bin")[0]["headers"]["Range"] == f"bytes={1 << 20}-"
    lines = logged()
    assert lines[0].startswith("http.x: x.bin: 2.1 MB of 3.1 MB (66%), ")  # 1 MiB there + the first 1 MiB read
    assert re.fullmatch(r"http\.x: x\.bin: 3\.1 MB in [\d.]+ s \([\d.]+ [kMG]?B/s, resumed at 1\.0 MB\)", lines[-1])


def test_an_ftp_download_knows_its_total_from_the_listing(tmp_path, logged):
    from standins.servers import FTPServer

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "x.bin").write_bytes(BODY)
    server = FTPServer(tmp_path / "root")
    try:
        remote = fetch("geo.x", server.url("x.bin"), tmp_path / "download", FAST)
    finally:
        server.stop()
    assert remote.path.read_bytes() == BODY
    lines = logged()
    assert len(lines) >= 2 and all(" of 3.1 MB (" in line for line in lines[:-1]), lines
    assert re.fullmatch(r"geo\.x: x\.bin: 3\.1 MB in .*", lines[-1])


def test_an_s3_download_knows_its_total(s3_server, tmp_path, logged):
    body = os.urandom(9 << 20)  # s3 reads 8 MiB blocks: one line before the end
    s3_server.put("public", "data/x.bin", body)
    settings = DownloadSettings(
        retries=1, timeout_seconds=10, s3={"endpoint_url": s3_server.endpoint, "anonymous": True}
    )
    remote = probe("s3.x", "s3://public/data/x.bin", settings)
    assert fetch("s3.x", remote, tmp_path / "download", settings).path.read_bytes() == body
    lines = logged()
    assert lines[0].startswith("s3.x: x.bin: 8.4 MB of 9.4 MB (88%), "), lines
    assert re.fullmatch(r"s3\.x: x\.bin: 9\.4 MB in .*", lines[-1])


def test_unpacking_an_archive_logs_its_progress_in_bytes(tmp_path, logged):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", BODY)
        zf.writestr("dir/b.bin", BODY)
    files = unpack("kaggle.x", archive, tmp_path / "out")
    assert [f.read_bytes() == BODY for f in files] == [True, True]
    lines = logged()
    assert len(lines) >= 4, lines  # 1 MiB copies, each logged with INTERVAL 0
    assert lines[0].startswith("kaggle.x: big.zip (unpacking): 1.0 MB of 6.3 MB (16%), ")
    assert re.fullmatch(r"kaggle\.x: big\.zip \(unpacking\): 6\.3 MB in [\d.]+ s \([\d.]+ [kMG]?B/s\)", lines[-1])


def test_on_a_terminal_a_download_draws_a_bar(http_server, tmp_path):
    import fcntl
    import termios

    url = http_server.add("/x.bin", BODY, rate=6 << 20)  # ~0.5 s
    job = """if True:
        import logging, pathlib, sys
        from omicslake.download import DownloadSettings, fetch
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")
        fetch("http.gene_info", sys.argv[1], pathlib.Path(sys.argv[2]), DownloadSettings(retries=0))
    """
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    job = subprocess.Popen(
        [sys.executable, "-c", job, url, tmp_path / "download"], cwd=REPO, stderr=terminal, env=env | {"TERM": "xterm"}
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # EIO: the job ended and closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert job.wait(60) == 0
    text = screen.decode(errors="replace")
    assert "http.gene_info: x.bin" in text and "━" in text and "MB/s" in text, text
    assert "3.1/3.1 MB" in text, text  # rich's DownloadColumn: done/total
    assert "omicslake.progress" not in text  # a bar instead of log lines
