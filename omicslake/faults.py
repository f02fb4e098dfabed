"""Fault injection for the crash tests: `OMICSLAKE_KILL_AT=<point>` makes the process SIGKILL
itself when it reaches that point (no `finally`, no `except` runs: as a node failure or the OOM
killer would). Unset, a point costs one dictionary lookup.

Points, in the order a load passes them: download (a body partly written), extract, normalize,
load (dlt's steps done), manifest (staged, manifest not written), rename (files moved into the
lake, not registered), commit (inside the registration's transaction), receipt (committed, no
receipt). `<point>#<n>` kills at the n-th time this process reaches it: `commit#2`, inside the
second load the run's registrar handles (a kill between two loads of one registration process).
"""

from __future__ import annotations

import os
import signal

POINTS = ("download", "extract", "normalize", "load", "manifest", "rename", "commit", "receipt")


REACHED: dict[str, int] = {}


def point(name: str) -> None:
    wanted = os.environ.get("OMICSLAKE_KILL_AT")
    if not wanted or wanted.partition("#")[0] != name:
        return
    REACHED[name] = REACHED.get(name, 0) + 1
    if REACHED[name] == int(wanted.partition("#")[2] or 1):
        os.kill(os.getpid(), signal.SIGKILL)
