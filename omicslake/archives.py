"""Unpack a downloaded archive (zip, tar, tar.gz) safely: every member is checked before any byte
is written. A member whose path is absolute or leaves the folder (zip-slip), a link, a device
file, an encrypted member, two members landing on one path, or more bytes than the disk has free
stop the dataset with one line naming the archive and the member. A corrupt or truncated archive
does too, and leaves no half-unpacked folder behind. Unpacking shows its progress in bytes
(`omicslake.progress`).

Python's zipfile silently rewrites `../` and absolute names, and tarfile's `data` filter raises
its own errors midway; both would hide a hostile or broken archive instead of refusing it.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from omicslake.errors import DatasetError, first_line
from omicslake.progress import Progress

CORRUPT = "the archive is corrupt or cut short: run again; if it fails again, the upstream file is broken (report it)"

UNREADABLE = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, RuntimeError, zlib.error, NotImplementedError)


@dataclass(frozen=True)
class Member:
    name: str  # as stored in the archive
    kind: str  # file, dir, link, device, encrypted
    size: int


def unpack(dataset: str, archive: Path, folder: Path) -> list[Path]:
    """Extract `archive` into `folder` (emptied first); return the files written, sorted."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    name = None
    try:
        with entries(dataset, archive) as members:
            files = checked(dataset, archive, folder, [member for member, _ in members])
            total = sum(member.size for member, _ in members if member.name in files)
            with Progress(f"{dataset}: {archive.name} (unpacking)", total) as progress:
                for member, open_member in members:
                    if target := files.get(member.name):
                        name = member.name
                        copy(open_member(), target, progress)
    except UNREADABLE as e:
        shutil.rmtree(folder, ignore_errors=True)
        where = f"member {name!r} cannot be read" if name else "the archive cannot be read"
        raise DatasetError(
            dataset, f"{where}: {first_line(e)} (corrupt or truncated)", archive.name, fix=CORRUPT
        ) from None
    except DatasetError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return sorted(files.values())


@contextlib.contextmanager
def entries(dataset: str, archive: Path):
    """[(Member, a function opening its bytes)] of a zip or tar archive, in archive order."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            yield [(zip_member(info), functools.partial(zf.open, info)) for info in zf.infolist()]
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            yield [(tar_member(m), functools.partial(tf.extractfile, m)) for m in tf.getmembers()]
    else:
        with open(archive, "rb") as f:
            zip_like = f.read(2) == b"PK"
        cause = "a corrupt or truncated zip archive (no central directory)" if zip_like else "not a zip or tar archive"
        raise DatasetError(dataset, cause, archive.name, fix=CORRUPT)


def copy(source, target: Path, progress: Progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source as src, progress.wrap(open(target, "wb")) as out:
        shutil.copyfileobj(src, out, 1 << 20)


def tar_member(member: tarfile.TarInfo) -> Member:
    if member.isdir():
        kind = "dir"
    elif member.isfile():
        kind = "file"
    else:
        kind = "link" if member.issym() or member.islnk() else "device"
    return Member(member.name, kind, member.size)


def zip_member(info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    if info.is_dir():
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "link"
    elif info.flag_bits & 0x1:
        kind = "encrypted"
    else:
        kind = "file"
    return Member(info.filename, kind, info.file_size)


def checked(dataset: str, archive: Path, folder: Path, members: list[Member]) -> dict[str, Path]:
    """{member name: target} of the files once every member is known to land
    inside `folder` on a path of its own and the disk has room for all of them."""

    def refuse(member: Member, why: str):
        raise DatasetError(
            dataset,
            f"member {member.name!r} {why}: refusing the archive",
            archive.name,
            fix="omicslake unpacks no such archive: unpack it yourself and load the files (or drop the entry)",
        )

    files, paths, folders = {}, {}, set()
    for member in members:
        path = PurePosixPath(member.name.replace("\\", "/"))  # PurePosixPath drops `.` parts and `//`
        if path.is_absolute() or (len(member.name) > 1 and member.name[1] == ":"):
            refuse(member, "has an absolute path")
        if ".." in path.parts:
            refuse(member, "leaves the folder (zip-slip)")
        if member.kind in ("link", "device", "encrypted"):
            refuse(member, "is encrypted" if member.kind == "encrypted" else f"is a {member.kind}")
        if member.kind != "file" or not path.parts:
            continue
        if path in paths:
            refuse(member, f"lands on the same path as {paths[path]!r}")
        if path in folders:
            refuse(member, "is also a folder of other members")
        if clash := next((p for p in path.parents if p in paths), None):
            refuse(member, f"is inside {clash.as_posix()!r}, which is a file")
        paths[path] = member.name
        folders.update(path.parents)
        files[member.name] = folder / path
    need, free = sum(m.size for m in members if m.kind == "file"), shutil.disk_usage(folder).free
    if need > free:
        raise DatasetError(
            dataset,
            f"unpacks to {need:,} bytes but {folder} has {free:,} free",
            archive.name,
            fix="free space, or move `staging` to a larger disk; then run again",
        )
    return files
