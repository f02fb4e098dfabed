"""Unpack a downloaded archive (zip, tar, tar.gz) safely: every member is checked before any byte
is written. A member whose path is absolute or leaves the folder (zip-slip), a link, or a device
file stops the dataset with one line naming the archive and the member.

Python's zipfile silently rewrites `../` and absolute names, and tarfile's `data` filter raises
its own errors midway; both would hide a hostile or broken archive instead of refusing it.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from omicslake.errors import DatasetError


def unpack(dataset: str, archive: Path, folder: Path) -> list[Path]:
    """Extract `archive` into `folder` (created); return the files written, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(info.filename, zip_kind(info)) for info in zf.infolist()]
            files = checked(dataset, archive, folder, members)
            for info in zf.infolist():
                if not info.is_dir():
                    target = folder / PurePosixPath(info.filename)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        return files
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            files = checked(dataset, archive, folder, [(m.name, tar_kind(m)) for m in members])
            for member in members:
                if member.isfile():
                    target = folder / PurePosixPath(member.name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        return files
    raise DatasetError(dataset, "not a zip or tar archive", archive.name)


def tar_kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "dir"
    if member.isfile():
        return "file"
    return "link" if member.issym() or member.islnk() else "device"


def zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "file"


def checked(dataset: str, archive: Path, folder: Path, members: list[tuple[str, str]]) -> list[Path]:
    """The files the members would write, once every member is known to stay inside `folder`."""
    files = []
    for name, kind in members:
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise DatasetError(dataset, f"member {name!r} has an absolute path: refusing the archive", archive.name)
        if ".." in path.parts:
            raise DatasetError(
                dataset, f"member {name!r} leaves the folder (zip-slip): refusing the archive", archive.name
            )
        if kind in ("link", "device"):
            raise DatasetError(dataset, f"member {name!r} is a {kind}: refusing the archive", archive.name)
        if kind == "file":
            files.append(folder / path)
    return sorted(files)
