"""Downloads against a real HTTP server on 127.0.0.1: retries, resume, checksums, conditional GET."""

import hashlib
import json
import os

import pytest

from omicslake.download import DownloadSettings, fetch
from omicslake.errors import CHECKSUM, DatasetError

FAST = DownloadSettings(retries=3, backoff_seconds=0.05, timeout_seconds=10)
BODY = os.urandom(3 << 20)
SHA = hashlib.sha256(BODY).hexdigest()


def get(url, tmp_path, **kw):
    return fetch("http.x", url, tmp_path / "download", settings=kw.pop("settings", FAST), **kw)


def test_download_verifies_sha256_and_records_validators(http_server, tmp_path):
    url = http_server.add("/data/x.bin", BODY)
    got = get(url, tmp_path, checksum=SHA)
    assert got.path.read_bytes() == BODY
    assert got.upstream.checksum == f"sha256:{SHA}"
    assert got.upstream.size == len(BODY)
    assert got.upstream.etag == http_server.resources["/data/x.bin"].etag
    assert got.upstream.last_modified


def test_bad_sha256_is_an_error_and_leaves_no_file(http_server, tmp_path):
    url = http_server.add("/x.bin", BODY)
    with pytest.raises(DatasetError, match=r"http\.x: .*/x\.bin: sha256 mismatch: expected 0{64}, got " + SHA) as e:
        get(url, tmp_path, checksum="0" * 64)
    assert str(e.value).endswith("; fix: " + CHECKSUM)
    assert not any((tmp_path / "download").iterdir())


def test_404_names_dataset_and_url(http_server, tmp_path):
    url = http_server.url("/missing.tsv")
    with pytest.raises(DatasetError, match=r"^http\.x: http://127\.0\.0\.1:\d+/missing\.tsv: HTTP 404") as e:
        get(url, tmp_path)
    assert e.value.fix == "check the URL in the config (a typo, or removed upstream?), or remove the entry"
    assert len(http_server.hits("/missing.tsv")) == 1  # a 404 is final: no retries


def test_500_then_200_retries(http_server, tmp_path):
    url = http_server.add("/flaky.bin", BODY, fail=[500, 503])
    assert get(url, tmp_path).path.read_bytes() == BODY
    assert [r["status"] for r in http_server.hits("/flaky.bin")] == [500, 503, 200]


def test_persistent_500_gives_up(http_server, tmp_path):
    url = http_server.add("/down.bin", BODY, fail=[500] * 10)
    with pytest.raises(DatasetError, match="HTTP 500"):
        get(url, tmp_path)
    assert len(http_server.hits("/down.bin")) == FAST.retries + 1


def test_429_honours_retry_after(http_server, tmp_path):
    url = http_server.add("/busy.bin", BODY, fail=[429], retry_after="1")
    assert get(url, tmp_path).path.read_bytes() == BODY
    first, second = http_server.hits("/busy.bin")
    assert first["status"] == 429 and second["status"] == 200
    assert second["time"] - first["time"] >= 0.9  # waited as told, not the 0.05 s backoff


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    url = http_server.add("/big.bin", BODY, drop_after=1 << 20)
    got = get(url, tmp_path, checksum=SHA)
    assert got.path.read_bytes() == BODY
    second = http_server.hits("/big.bin")[1]
    assert second["headers"]["Range"] == f"bytes={1 << 20}-"
    assert second["status"] == 206


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    url = http_server.add("/norange.bin", BODY, drop_after=1 << 20, ranges=False)
    assert get(url, tmp_path, checksum=SHA).path.read_bytes() == BODY
    assert [r["status"] for r in http_server.hits("/norange.bin")] == [200, 200]


def test_partial_file_from_an_earlier_attempt_is_resumed(http_server, tmp_path):
    url = http_server.add("/part.bin", BODY)
    res = http_server.resources["/part.bin"]
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "part.bin.part").write_bytes(BODY[:1000])
    (folder / "part.bin.part.json").write_text(json.dumps({"url": url, "etag": res.etag, "last_modified": None}))
    assert get(url, tmp_path, checksum=SHA).path.read_bytes() == BODY
    assert http_server.hits("/part.bin")[0]["headers"]["Range"] == "bytes=1000-"


def test_unchanged_upstream_answers_304(http_server, tmp_path):
    url = http_server.add("/same.bin", BODY)
    first = get(url, tmp_path)
    again = get(url, tmp_path, previous=first.upstream)
    assert again.path is None and again.upstream == first.upstream
    assert http_server.hits("/same.bin")[-1]["status"] == 304


def test_local_file_is_read_in_place(tmp_path):
    src = tmp_path / "mirror" / "a.csv"
    src.parent.mkdir()
    src.write_text("a\n1\n")
    got = fetch("http.x", f"file://{src}", tmp_path / "download", FAST)
    assert got.path == src  # no copy of a local mirror
    assert not (tmp_path / "download").exists()
    assert fetch("http.x", f"file://{src}", tmp_path / "download", FAST, previous=got.upstream).path is None
    with pytest.raises(DatasetError, match="file not found"):
        fetch("http.x", f"file://{tmp_path}/nope.csv", tmp_path / "download", FAST)


def test_a_new_sha256_in_the_config_defeats_the_unchanged_shortcut(http_server, tmp_path):
    url = http_server.add("/pinned.bin", BODY)
    first = get(url, tmp_path)
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        get(url, tmp_path, previous=first.upstream, checksum="1" * 64)
    assert http_server.hits("/pinned.bin")[-1]["status"] == 200  # downloaded and checked, not 304


def test_a_whole_part_left_by_a_kill_before_the_rename_is_not_stuck_on_416(http_server, tmp_path):
    url = http_server.add("/whole.bin", BODY)
    res = http_server.resources["/whole.bin"]
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "whole.bin.part").write_bytes(BODY)  # complete, but never renamed
    (folder / "whole.bin.part.json").write_text(json.dumps({"url": url, "etag": res.etag, "last_modified": None}))
    assert get(url, tmp_path, checksum=SHA).path.read_bytes() == BODY
    assert [r["status"] for r in http_server.hits("/whole.bin")] == [416, 200]


@pytest.mark.parametrize("published", ["md5:{}", "{}", "MD5:{}"])
def test_a_published_md5_is_verified(http_server, tmp_path, published):
    url = http_server.add("/z.bin", BODY)
    md5 = hashlib.md5(BODY).hexdigest()
    got = get(url, tmp_path, checksum=published.format(md5))
    assert got.upstream.checksum == f"md5:{md5}"  # the lake records what was checked
    with pytest.raises(DatasetError, match=r"http\.x: .*/z\.bin: md5 mismatch: expected f{32}, got " + md5):
        get(url, tmp_path / "again", checksum="md5:" + "f" * 32)
    assert not any((tmp_path / "again" / "download").iterdir())


def test_an_unreadable_checksum_is_an_error(http_server, tmp_path):
    url = http_server.add("/y.bin", BODY)
    with pytest.raises(DatasetError, match="cannot read checksum 'crc32:1234'"):
        get(url, tmp_path, checksum="crc32:1234")


def test_a_password_in_the_url_is_used_but_never_recorded(http_server, tmp_path):
    http_server.add("/private.bin", BODY, login="me:pa55word")
    url = f"http://me:pa55word@127.0.0.1:{http_server.port}/private.bin"
    got = get(url, tmp_path)
    assert got.path.read_bytes() == BODY
    assert got.upstream.url == f"http://127.0.0.1:{http_server.port}/private.bin"
    with pytest.raises(DatasetError) as failed:
        get(url.replace("pa55word", "wrong"), tmp_path / "again")
    assert "HTTP 401" in str(failed.value) and "wrong" not in str(failed.value)


def test_resuming_needs_no_retry_and_keeps_the_servers_answer(http_server, tmp_path):
    url = http_server.add("/gone.bin", BODY)
    res = http_server.resources["/gone.bin"]
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "gone.bin.part").write_bytes(BODY)  # whole, never renamed: the server answers 416
    (folder / "gone.bin.part.json").write_text(json.dumps({"url": url, "etag": res.etag, "last_modified": None}))
    no_retries = DownloadSettings(retries=0, backoff_seconds=0.05, timeout_seconds=10)
    assert get(url, tmp_path, settings=no_retries, checksum=SHA).path.read_bytes() == BODY
    (folder / "gone.bin.part").write_bytes(BODY[:100])
    (folder / "gone.bin.part.json").write_text(json.dumps({"url": url, "etag": res.etag, "last_modified": None}))
    del http_server.resources["/gone.bin"]
    with pytest.raises(DatasetError, match="HTTP 404"):  # the answer to the Range request, not "failed"
        get(url, tmp_path, settings=no_retries)


def test_a_server_answering_206_unasked_is_an_error_not_a_loop(http_server, tmp_path):
    url = http_server.add("/odd.bin", BODY, unasked_from=5)
    with pytest.raises(DatasetError, match=r"part of the file unasked \(HTTP 206\)"):
        get(url, tmp_path)
    assert len(http_server.hits("/odd.bin")) == 1


def test_a_server_that_refuses_connections_is_retried_then_one_clear_error(tmp_path):
    """Connection errors go through the same retry wait as 429s (which then has no response)."""
    import socket

    from omicslake.download import DownloadSettings, fetch
    from omicslake.errors import DatasetError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    settings = DownloadSettings(retries=2, backoff_seconds=0.01, timeout_seconds=2)
    with pytest.raises(DatasetError, match=r"^http\.t: .*cannot reach server after 3 attempts: .*refused; fix: "):
        fetch("http.t", f"http://127.0.0.1:{port}/a.csv", tmp_path, settings)
