"""Fault injection for the crash tests: `OMICSLAKE_KILL_AT=<point>` makes the process SIGKILL
itself when it reaches that point (no `finally`, no `except` runs: as a node failure or the OOM
killer would). Unset, a point costs one dictionary lookup.

Points, in the order a load passes them: download (a body partly written), extract, normalize,
load (dlt's steps done), manifest (staged, manifest not written), rename (files moved into the
lake, not registered), commit (inside the registration's transaction), receipt (committed, no
receipt).
"""

from __future__ import annotations

import os
import signal

POINTS = ("download", "extract", "normalize", "load", "manifest", "rename", "commit", "receipt")


def point(name: str) -> None:
    if os.environ.get("OMICSLAKE_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
