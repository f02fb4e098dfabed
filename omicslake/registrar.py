"""Registration for a whole workflow run in one process that keeps the lake attached.

A registration in a process of its own pays ~1 s before its first statement (Python, imports,
loading the 36 MB DuckLake extension, ATTACH) for ~25-70 ms of DuckLake work. The workflow's
`register` rule instead hands each staged load to one registrar process per Snakemake run
(`Registrar`, in the Snakemake process; the server is `python -m omicslake.registrar`), which
registers it in the lake it holds: one snapshot per load, one receipt and one outcome record per
dataset, as before. Between loads the lake stays attached while work keeps coming; the registrar
lets it go when idle (`IDLE_SECONDS`) or when another Omicslake process waits for it (a probe,
`omicslake status`, another run's writer), so nobody waits for a whole run.

A load that fails is that dataset's failure (its job fails, with its one line), and so is an ingest
that failed inside a SLURM group job, which leaves its line where the manifest would be; the next load
starts on a released, freshly attached lake. If the registrar process dies (killed, out of
memory), the job whose load it held fails, the lake is as crash-safe as ever (`register`), and the
next job starts a new registrar.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from omicslake import module_command
from omicslake.manifest import failed_ingest

IDLE_SECONDS = 0.5  # no load for this long: detach, so readers get in
YIELD_SECONDS = 5  # after letting a waiting process have the lake, give it this long before taking it back

log = logging.getLogger("omicslake")


class RegistrationFailed(Exception):
    """A dataset's registration failed; its one line was printed already."""


class Registrar:
    """The Snakemake process's side: sends each load to the registrar process, one at a time."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def register(self, request: dict) -> None:
        """Register one load (`request`: `serve`'s fields); raise RegistrationFailed on failure."""
        line = failed_ingest(request["manifest"])  # on a SLURM node (jobs.run)
        if line:
            print(f"omicslake: {line}", file=sys.stderr, flush=True)
            raise RegistrationFailed(line)
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                command, env = module_command("omicslake.registrar")
                self.process = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                )
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                reply = self.process.stdout.readline()
            except BrokenPipeError:
                reply = ""
            if not reply:  # the registrar died: killed, out of memory
                code = self.process.wait()
                line = (
                    f"{request['dataset']}: the registration process died (exit {code}: killed, out of memory?); "
                    f"the lake is unchanged or holds the whole load; fix: run the workflow again (see {request['log']})"
                )
            else:
                line = json.loads(reply)["error"]
        if line:
            print(f"omicslake: {line}", file=sys.stderr, flush=True)
            raise RegistrationFailed(line)

    def close(self) -> None:
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                self.process.stdin.close()  # the registrar detaches and ends
                self.process.wait()
            self.process = None


def serve(requests, replies) -> None:
    """Register the loads read from `requests` (one JSON line each), replying one JSON line each:
    {"error": None} or {"error": "<the dataset's one line>"}."""
    from omicslake import jobs
    from omicslake.errors import first_line
    from omicslake.register import Writer, register

    session: Writer | None = None
    served = 0

    def register_one(r: dict, session: Writer, served: int) -> None:
        log.info("%s: registrar %d, load %d of this process", r["dataset"], os.getpid(), served)
        register(r["manifest"], r["catalog"], r["data_path"], r["receipt"], r["s3"], session)

    try:
        while True:
            if session is not None and not ready(requests, IDLE_SECONDS):
                session.release()  # idle: readers get the lake
            line = requests.readline()
            if not line:
                return
            r = json.loads(line)
            if session is not None and not session.matches(r["catalog"], r["data_path"], r["s3"]):
                session.close()
                session = None
            if session is None:
                session = Writer(r["catalog"], r["data_path"], r["s3"])
            outcome, served = (Path(r["folder"]), r["step"]), served + 1
            try:
                _, error = jobs.attempt(r["log"], register_one, r, session, served, outcome=outcome)
            except Exception as e:  # a bug or a library's own error: its traceback goes to the job's log
                with open(r["log"], "a") as stream:
                    traceback.print_exc(file=stream)
                error = f"{r['dataset']}: unexpected {type(e).__name__}: {first_line(e)} (see {r['log']})"
            if error:
                session.release()  # the next load starts on a freshly attached lake
            replies.write(json.dumps({"error": error}) + "\n")
            replies.flush()
            if session.wanted():
                session.release()
                deadline = time.monotonic() + YIELD_SECONDS
                while session.wanted() and time.monotonic() < deadline:
                    time.sleep(0.05)
    finally:
        if session is not None:
            session.close()


def ready(stream, seconds: float) -> bool:
    """Does `stream` have a line within `seconds`? (The client sends one request per reply, so
    nothing waits in Python's buffer.)"""
    return bool(select.select([stream], [], [], seconds)[0])


if __name__ == "__main__":
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the replies
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group: Snakemake reports it
        serve(sys.stdin, replies)
