"""Run one workflow job: log to the job's log file, turn a DatasetError into one clear line, and
record how the job ended (`omicslake status` and the run report read those records)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omicslake.errors import OmicslakeError, first_line
from omicslake.manifest import utc_now, write_json

OUTCOMES = "outcome"  # <staging>/<source>/<name>/outcome/<step>.json: the last job of each step


@dataclasses.dataclass
class Outcome:
    """How the last job of one step (ingest, register, a chunk) of a dataset ended."""

    step: str
    ok: bool
    started_at: str
    seconds: float
    cause: str | None = None  # the one line the job printed
    log: str | None = None

    @staticmethod
    def path(folder: Path, step: str) -> Path:
        return Path(folder, OUTCOMES, f"{step}.json")

    @classmethod
    def read_all(cls, folder: Path) -> list[Outcome]:
        """The outcomes recorded in a dataset's staging folder, oldest first."""
        found = []
        for path in sorted(Path(folder, OUTCOMES).glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(cls(**json.loads(path.read_text())))
        return sorted(found, key=lambda o: o.started_at)


def outcome_of(smk) -> tuple[Path, str]:
    """Where a Snakemake job of one dataset records its outcome: its staging folder, and its rule
    (`<staging>/<source>/<name>/outcome/<rule>[_<chunk>].json`)."""
    wildcards, chunk = smk.wildcards, smk.wildcards.get("chunk")
    return Path(smk.config["staging"], wildcards.source, wildcards.name), smk.rule + (f"_{chunk}" if chunk else "")


def run(log_file: str | None, func: Callable, *args, outcome: tuple[Path, str] | None = None, **kwargs):
    """Call `func`; on an OmicslakeError print `omicslake: <dataset>: <file>: <cause>; fix: <fix>` and exit 1.
    `outcome` (dataset folder, step): record how it ended, for `omicslake status`."""
    started, clock = utc_now(), time.monotonic()

    def record(cause: str | None) -> None:
        if outcome:
            folder, step = outcome
            ended = Outcome(step, cause is None, started, round(time.monotonic() - clock, 3), cause, log_file)
            write_json(Outcome.path(folder, step), dataclasses.asdict(ended))

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
                record(f"{type(e).__name__}: {first_line(e)}")
                raise
            if isinstance(e, OSError):  # wherever it struck: one line, the job's inputs are kept for the rerun
                where = e.filename or "writing"
                e = OmicslakeError(f"{e.strerror} ({where})", "free space on the staging or lake disk, then rerun")
            with contextlib.suppress(OSError):  # a full disk may refuse the record too
                record(first_line(e))
            logging.getLogger("omicslake").error("%s", e)
            print(f"omicslake: {e}", file=sys.__stderr__)
            logging.shutdown()
            sys.stdout.flush()
            sys.__stderr__.flush()
            # Not SystemExit: after a failed CSV read pyarrow's reader threads can abort or spin
            # in interpreter shutdown; the error is reported, nothing is left to clean up.
            os._exit(1)
        except Exception as e:  # a bug or a library's own error: the traceback follows in the log
            record(f"unexpected {type(e).__name__}: {first_line(e)} (see the log)")
            raise
        record(None)
        return result
