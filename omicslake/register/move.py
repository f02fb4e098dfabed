"""Moving staged files into the lake: renamed into their table folders under DATA_PATH, never
copied, with a journal in the staging folder (`manifest.JOURNAL`) of where they went, so that an
interrupted registration's files are found and removed (`discard_orphans`) or moved back."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omicslake.catalog import is_url, registered_paths
from omicslake.errors import DatasetError
from omicslake.manifest import JOURNAL, Manifest
from omicslake.register.plan import TablePlan

log = logging.getLogger("omicslake")


def discard_orphans(con, workdir: Path, manifest: Manifest) -> None:
    """Delete files an interrupted registration renamed into the lake but never committed.

    They are in no snapshot, so deleting them loses nothing; files this manifest is about to
    register (a rerun of the same registration) are kept.
    """
    journal = workdir / JOURNAL
    if not journal.exists():
        return
    entries = json.loads(journal.read_text())
    wanted = {Path(f.path).name for f in manifest.files}
    registered = registered_paths(con, sorted({(schema, table) for schema, table, _ in entries}))
    for _, _, dest in entries:
        path = Path(dest)
        if path.exists() and path.name not in wanted and dest not in registered:
            log.info("%s: removing %s, left unregistered by an interrupted run", manifest.dataset, path)
            path.unlink()
    journal.unlink()


def write_journal(workdir: Path, plans: list[TablePlan]) -> Path:
    """Record where the plans' files go: what to clean up should this process die before COMMIT."""
    journal = workdir / JOURNAL
    journal.write_text(json.dumps([[p.schema, p.table, str(d)] for p in plans for _, d in p.files]))
    return journal


def move_into_lake(dataset: str, plans: list[TablePlan]) -> list[tuple[Path, Path]]:
    """Rename staged files into their table folders; same filesystem only, never a copy."""
    moved = []
    try:
        for plan in plans:
            for staged, dest in plan.files:
                if is_url(staged.path):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = Path(staged.path)
                if not src.exists() and dest.exists():
                    continue  # moved by an interrupted earlier attempt
                os.rename(src, dest)
                moved.append((src, dest))
    except OSError as e:
        move_back(moved)
        fix = "check that lake.data_path is writable, then run again"
        if e.errno == 18:
            fix = "put staging and lake.data_path on the same filesystem (files are moved, not copied)"
        raise DatasetError(dataset, f"cannot move file into the lake: {e.strerror}", e.filename, fix=fix) from e
    return moved


def move_back(moved: list[tuple[Path, Path]]) -> None:
    """Undo `move_into_lake`: the files back in staging, a rerun starts from the same state."""
    for src, dest in reversed(moved):
        dest.replace(src)
