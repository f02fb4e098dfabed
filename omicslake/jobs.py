"""Run one workflow job: log to the job's log file, turn a DatasetError into one clear line."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omicslake.errors import OmicslakeError


def run(log_file: str | None, func: Callable, *args, **kwargs):
    """Call `func`; on an OmicslakeError print `omicslake: <dataset>: <file>: <cause>; fix: <fix>` and exit 1."""
    with contextlib.ExitStack() as stack:
        if log_file:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(open(log_file, "a"))
            stack.enter_context(contextlib.redirect_stderr(stream))
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        try:
            return func(*args, **kwargs)
        except (OmicslakeError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if isinstance(e, OSError):  # wherever it struck: one line, the job's inputs are kept for the rerun
                where = e.filename or "writing"
                e = OmicslakeError(f"{e.strerror} ({where})", "free space on the staging or lake disk, then rerun")
            logging.getLogger("omicslake").error("%s", e)
            print(f"omicslake: {e}", file=sys.__stderr__)
            logging.shutdown()
            sys.stdout.flush()
            sys.__stderr__.flush()
            # Not SystemExit: after a failed CSV read pyarrow's reader threads can abort or spin
            # in interpreter shutdown; the error is reported, nothing is left to clean up.
            os._exit(1)
