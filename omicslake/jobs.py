"""Run one workflow job: log to the job's log file, turn a DatasetError into one clear line, and
record how the job ended (`omicslake status` and the run report read those records)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from omicslake.errors import OmicslakeError, first_line
from omicslake.manifest import utc_now, write_failure, write_json

OUTCOMES = "outcome"  # <staging>/<source>/<name>/outcome/<step>.json: the last job of each step
UNFINISHED = "did not finish: still running, or killed (time limit, out of memory, node failure): see its log"


@dataclasses.dataclass
class Outcome:
    """How the last job of one step (a chunk, ingest, register) of a dataset ended. Written when
    the job starts (ok None) and again when it ends: a job killed outright stays unfinished."""

    step: str
    ok: bool | None  # None: started, not finished
    started_at: str
    seconds: float | None = None
    cause: str | None = None  # the one line the job printed
    log: str | None = None
    slurm_job: str | None = None

    @staticmethod
    def path(folder: Path, step: str) -> Path:
        return Path(folder, OUTCOMES, f"{step}.json")

    @staticmethod
    def stage(step: str) -> int:
        """Chunks (and their plan) come before a dataset's ingest, which comes before register."""
        return 3 if step == "register" else 1 if step.startswith("chunks_") or "_chunk_" in step else 2

    @classmethod
    def read_all(cls, folder: Path) -> list[Outcome]:
        """The outcomes recorded in a dataset's staging folder, oldest first."""
        found = []
        for path in sorted(Path(folder, OUTCOMES).glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(cls(**json.loads(path.read_text())))
        return sorted(found, key=lambda o: o.started_at)

    def write(self, folder: Path) -> None:
        write_json(self.path(folder, self.step), dataclasses.asdict(self))


def forget(folder: Path, below: int) -> None:
    """A step succeeded: the failures of the steps before it (stage below `below`) are moot."""
    for outcome in Outcome.read_all(folder):
        if not outcome.ok and Outcome.stage(outcome.step) < below:
            Outcome.path(folder, outcome.step).unlink(missing_ok=True)


def forget_chunks(folder: Path) -> None:
    """A new chunk plan: the outcomes of the previous plan's chunks go with their chunks."""
    for path in Path(folder, OUTCOMES).glob("*_chunk_*.json"):
        path.unlink(missing_ok=True)


def outcome_of(smk) -> tuple[Path, str]:
    """Where a Snakemake job of one dataset records its outcome: its staging folder, and its rule
    (`<staging>/<source>/<name>/outcome/<rule>[_<chunk>].json`)."""
    wildcards, chunk = smk.wildcards, smk.wildcards.get("chunk")
    return Path(smk.config["staging"], wildcards.source, wildcards.name), smk.rule + (f"_{chunk}" if chunk else "")


def run(
    log_file: str | None,
    func: Callable,
    *args,
    outcome: tuple[Path, str] | None = None,
    failure_to: tuple[str, str] | None = None,
    **kwargs,
):
    """Call `func`; on an OmicslakeError print `omicslake: <dataset>: <file>: <cause>; fix: <fix>` and exit 1.
    `outcome` (dataset folder, step): record how it ended, for `omicslake status`.
    `failure_to` (output, dataset): any failure is written to the job's output instead (`write_failure`)
    and the job succeeds: in a SLURM group job one member's failure would fail, clean up and re-run
    every member (Snakemake 9.27 has no per-member failure); registration reports it for the dataset."""
    if outcome and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, functools.partial(killed, outcome, log_file, utc_now()))
    try:
        result, error = attempt(log_file, func, *args, outcome=outcome, **kwargs)
    except Exception as e:
        if failure_to is None:
            raise
        with open(log_file or os.devnull, "a") as stream:
            traceback.print_exc(file=stream)
        error = f"{failure_to[1]}: unexpected {type(e).__name__}: {first_line(e)} (see {log_file})"
    if error is not None and failure_to is not None:
        write_failure(failure_to[0], failure_to[1], error)
        return None
    if error is None:
        return result
    print(f"omicslake: {error}", file=sys.__stderr__)
    sys.stdout.flush()
    sys.__stderr__.flush()
    # Not SystemExit: after a failed CSV read pyarrow's reader threads can abort or spin
    # in interpreter shutdown; the error is reported, nothing is left to clean up.
    os._exit(1)


def killed(outcome: tuple[Path, str], log_file: str | None, started: str, signum, frame) -> None:
    """SLURM's time limit, scancel: SIGTERM, then SIGKILL. Record it, then go."""
    record(outcome, log_file, started, None, False, "killed by SIGTERM (a SLURM time limit, or scancel): see its log")
    os._exit(128 + signum)


def record(
    outcome: tuple[Path, str] | None, log_file: str | None, started: str, seconds, ok: bool | None, cause=None
) -> None:
    """Write a job's outcome (ok None: started, not finished)."""
    if not outcome:
        return
    folder, step = outcome
    with contextlib.suppress(OSError):  # a full disk may refuse it: the job's own error comes first
        Outcome(step, ok, started, seconds, cause, log_file, os.environ.get("SLURM_JOB_ID")).write(folder)
        if ok:  # the dataset got past the failures of its earlier steps
            forget(folder, Outcome.stage(step))


def attempt(log_file: str | None, func: Callable, *args, outcome: tuple[Path, str] | None = None, **kwargs):
    """Call `func` with logging to `log_file` and its outcome recorded; return (result, None), or
    (None, the one-line error) when the user can do something about it. Other errors propagate."""
    started, clock = utc_now(), time.monotonic()
    record(outcome, log_file, started, None, None)
    with contextlib.ExitStack() as stack:
        if log_file:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(open(log_file, "a"))
            stack.enter_context(contextlib.redirect_stderr(stream))
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        try:
            result = func(*args, **kwargs)
        except (OmicslakeError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
                cause = f"{type(e).__name__}: {first_line(e)}"
                record(outcome, log_file, started, round(time.monotonic() - clock, 3), False, cause)
                raise
            if isinstance(e, OSError):  # wherever it struck: one line, the job's inputs are kept for the rerun
                where = e.filename or "writing"
                e = OmicslakeError(f"{e.strerror} ({where})", "free space on the staging or lake disk, then rerun")
            record(outcome, log_file, started, round(time.monotonic() - clock, 3), False, one_line(e))
            logging.getLogger("omicslake").error("%s", e)
            logging.shutdown()
            return None, str(e)
        except Exception as e:  # a bug or a library's own error: the traceback follows in the log
            cause = f"unexpected {type(e).__name__}: {first_line(e)} (see the log)"
            record(outcome, log_file, started, round(time.monotonic() - clock, 3), False, cause)
            raise
        record(outcome, log_file, started, round(time.monotonic() - clock, 3), True)
        return result, None


def one_line(e: BaseException) -> str:
    """An error's cause and fix on one line (a cause may run to several)."""
    fix = getattr(e, "fix", None)
    cause = first_line(OmicslakeError(e.message)) if isinstance(e, OmicslakeError) else first_line(e)
    return f"{cause}; fix: {first_line(OmicslakeError(fix))}" if fix else cause
