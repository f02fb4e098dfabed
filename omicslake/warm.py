"""Local ingest jobs run in forks of one warm process: no start-up, imports or dlt warm-up per job.

A tiny dataset's ingest job spends ~2 s getting ready (Python, importing dlt and pyarrow ~1.2 s,
dlt's first pipeline run in a process ~0.8 s where later ones take ~0.35 s) for well under a second
of work, and a run of thousands of datasets is mostly that. `hand_off()`, called at the top of a
job's script, passes the script to a server that has paid it once (one per user, Python, working
directory and package version; started by the first job, gone after IDLE_SECONDS without one). The
server forks a child per job, which runs the same script with the job's arguments, environment,
working directory and standard streams: it behaves as the job's own process would (its own memory,
exit status and signals: the job forwards SIGTERM and SIGINT to it, and a job that dies takes its
child with it), and the job exits with the child's status. If no server can be had, or with
`OMICSLAKE_WARM=0`, the script runs in the job's own process, as before.

The socket is an abstract Unix socket (no file, gone with the server); server and jobs check each
other's user id (SO_PEERCRED), so no other user can run code in, or read the environment of, either.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from omicslake import module_command

IDLE_SECONDS = 10  # no job for this long: the server ends
START_SECONDS = 60  # a job waits this long for a server to start, then runs the script itself
PACKAGE = Path(__file__).resolve().parent

CHILD = False  # True in a forked child: hand_off() returns and the script runs


def hand_off() -> None:
    """Run the calling script (`sys.argv`) in a fork of the warm server and exit with its status;
    return at once in that fork, or when no server can be had (the script then runs here)."""
    if CHILD or os.environ.get("OMICSLAKE_WARM") == "0":
        return
    conn = connect(server_name())
    if conn is None:
        return
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    replies = conn.makefile("rb")  # the connection stays open: closing it (dying) ends the child
    with contextlib.suppress(OSError):
        socket.send_fds(conn, [struct.pack("q", len(request)) + request], [0, 1, 2])  # the job's stdin, stdout, stderr
    pid = read_int(replies)
    if pid is None:  # the server ended before it took the job (idle, with the job still queued): run here
        replies.close()
        conn.close()
        return
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: os.kill(pid, signum))
    status = read_int(replies)
    if status is None:  # the server died mid-job (killed, out of memory): so does the job, and its child
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        print("omicslake: the warm process running this job died (killed, out of memory?)", file=sys.stderr)
        status = 1
    sys.stdout.flush()
    os._exit(status)


def read_int(stream) -> int | None:
    try:
        data = stream.read(8)
    except OSError:  # reset: the server is gone
        return None
    return struct.unpack("q", data)[0] if len(data) == 8 else None


def server_name() -> str:
    """One server per user, Python, working directory (dlt reads `.dlt/*.toml` there) and version
    of the package and of those files: a server never runs code or settings older than the job's."""
    stamps = [(str(p), p.stat().st_mtime_ns) for p in sorted(PACKAGE.rglob("*.py"))]
    stamps += [(str(p), p.stat().st_mtime_ns) for p in sorted(Path(".dlt").glob("*.toml"))]
    key = json.dumps([os.getuid(), sys.executable, os.getcwd(), stamps])
    return "omicslake-warm-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def connect(name: str) -> socket.socket | None:
    """A connection to server `name`, started if needed; None if it cannot be had."""
    server = None
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect("\0" + name)
        except OSError:
            conn.close()
            if server is None:
                server = start(name)
            elif server.poll() is not None and server.returncode != 0:
                return None  # it could not start (see its log): run here
            time.sleep(0.05)
            continue
        if peer_uid(conn) != os.getuid():  # someone else holds the name: never hand them anything
            conn.close()
            return None
        return conn
    return None


def start(name: str) -> subprocess.Popen:
    """Start a server (in a session of its own: a job's Ctrl-C or end does not end it). If another
    job's server wins the name, this one ends at once (exit 0) and the job connects to that one."""
    command, env = module_command("omicslake.warm")
    log = Path(".snakemake", "omicslake", "warm.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as stream:
        return subprocess.Popen(
            [*command, name], stdin=subprocess.DEVNULL, stdout=stream, stderr=stream, env=env, start_new_session=True
        )


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def serve(name: str) -> None:
    """Accept jobs on `name` until IDLE_SECONDS pass without one; fork a child per job; send each
    job its child's pid, then its exit status; end a child whose job went away."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return  # another job's server is up
        raise
    listener.listen(128)
    warm_up()
    wakeup_read, wakeup_write = socket.socketpair()
    wakeup_write.setblocking(False)
    signal.set_wakeup_fd(wakeup_write.fileno())
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select below
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}  # child pid -> its job's connection
    idle_since = time.monotonic()
    while jobs or time.monotonic() - idle_since < IDLE_SECONDS:
        for key, _ in selector.select(timeout=IDLE_SECONDS):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = receive(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in [selector, listener, wakeup_read, wakeup_write, conn, *jobs.values()]:
                        fd.close()
                    child(request, fds)  # never returns
                for fd in fds:
                    os.close(fd)
                jobs[pid] = conn
                try:
                    conn.sendall(struct.pack("q", pid))
                    selector.register(conn, selectors.EVENT_READ, pid)  # readable: its job went away
                except OSError:  # the job went away while it waited
                    os.kill(pid, signal.SIGTERM)
            elif key.fileobj is wakeup_read:
                wakeup_read.recv(4096)
                while jobs:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if not pid:
                        break
                    conn = jobs.pop(pid)
                    with contextlib.suppress(KeyError):  # unregistered when its job went away
                        selector.unregister(conn)
                    with contextlib.suppress(OSError):  # the job may be gone
                        conn.sendall(struct.pack("q", exit_code(status)))
                    conn.close()
                    idle_since = time.monotonic()
            else:  # the job closed its end: killed (Snakemake's SIGKILL, a lost node): end its child
                with contextlib.suppress(ProcessLookupError):
                    os.kill(key.data, signal.SIGTERM)
                selector.unregister(key.fileobj)


def receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """A job's request and its standard streams (sent at once on connecting)."""
    conn.settimeout(10)
    if peer_uid(conn) != os.getuid():
        raise ValueError("another user")
    message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    try:
        if len(message) < 8 or len(fds) != 3:
            raise ValueError("no request")
        size = struct.unpack("q", message[:8])[0]
        while len(message) < 8 + size:
            more = conn.recv(1 << 20)
            if not more:
                raise ValueError("a cut request")
            message += more
        conn.settimeout(None)
        return json.loads(message[8:]), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def exit_code(status: int) -> int:
    """A child's wait status as a shell reports it: its exit code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def child(request: dict, fds: list[int]) -> None:
    """Become the job's process and run its script; exit with its status."""
    global CHILD
    CHILD = True
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def warm_up() -> None:
    """Import what an ingest job imports, and run dlt once: its first run in a process loads more."""
    import tempfile

    import dlt
    import pyarrow as pa
    import snakemake.iocontainers  # noqa: F401  (the script's preamble unpickles its job with these)
    import snakemake.logging  # noqa: F401
    from dlt.destinations import filesystem

    import omicslake.ingest  # noqa: F401
    from omicslake import download, formats  # noqa: F401

    with tempfile.TemporaryDirectory() as folder:
        pipeline = dlt.pipeline(
            pipeline_name="warm_up",
            pipelines_dir=f"{folder}/.dlt",
            destination=filesystem(bucket_url=f"{folder}/parquet"),
            dataset_name="warm_up",
        )
        table = pa.table({"id": ["a"], "value": [1.0]})
        pipeline.run(dlt.resource([table], name="t"), loader_file_format="parquet")


if __name__ == "__main__":
    from omicslake import warm  # not this `__main__` copy: the scripts' `hand_off` must see CHILD set

    warm.serve(sys.argv[1])
