"""Safe unpacking: hostile members are refused before anything is written."""

import io
import tarfile
import zipfile

import pytest

from omicslake.archives import unpack
from omicslake.errors import DatasetError


def make_zip(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symlink, as `zip --symlinks` stores it
            zf.writestr(info, target)
    return path


def make_tar(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [make_zip, make_tar])
def test_an_archive_unpacks_its_files(tmp_path, make):
    archive = make(tmp_path / "a.archive", {"data/counts.csv": b"a\n1\n", "README.md": b"hi"})
    files = unpack("kaggle.x", archive, tmp_path / "out")
    assert files == [tmp_path / "out" / "README.md", tmp_path / "out" / "data" / "counts.csv"]
    assert (tmp_path / "out" / "data" / "counts.csv").read_bytes() == b"a\n1\n"


@pytest.mark.parametrize("make", [make_zip, make_tar])
@pytest.mark.parametrize(
    "members, links, cause",
    [
        ({"../evil.csv": b"x"}, None, "member '../evil.csv' leaves the folder (zip-slip)"),
        ({"ok/../../evil.csv": b"x"}, None, "leaves the folder (zip-slip)"),
        ({"/etc/evil.csv": b"x"}, None, "member '/etc/evil.csv' has an absolute path"),
        ({"ok.csv": b"x"}, {"link.csv": "/etc/passwd"}, "member 'link.csv' is a link"),
    ],
)
def test_a_hostile_member_refuses_the_whole_archive(tmp_path, make, members, links, cause):
    archive = make(tmp_path / "bad.archive", members, links)
    with pytest.raises(DatasetError) as error:
        unpack("kaggle.x", archive, tmp_path / "out" / "deep")
    assert str(error.value).startswith("kaggle.x: bad.archive: ") and cause in str(error.value)
    assert list((tmp_path / "out").rglob("*")) == []  # nothing written
    assert not (tmp_path / "evil.csv").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"plain text")
    with pytest.raises(DatasetError, match=r"^kaggle\.x: x\.zip: not a zip or tar archive"):
        unpack("kaggle.x", tmp_path / "x.zip", tmp_path / "out")


@pytest.mark.parametrize("make", [make_zip, make_tar])
@pytest.mark.parametrize(
    "members, cause",
    [
        ({"data/a.csv": b"1", "data/./a.csv": b"2"}, "'data/./a.csv' lands on the same path as 'data/a.csv'"),
        ({"data\\a.csv": b"1", "data/a.csv": b"2"}, "'data/a.csv' lands on the same path as 'data\\\\a.csv'"),
        ({"data": b"a file", "data/counts.csv": b"2"}, "member 'data/counts.csv' is inside 'data', which is a file"),
        ({"data/counts.csv": b"2", "data": b"a file"}, "member 'data' is also a folder of other members"),
    ],
)  # fmt: skip
def test_members_that_would_overwrite_each_other_refuse_the_archive(tmp_path, make, members, cause):
    archive = make(tmp_path / "clash.archive", members)
    with pytest.raises(DatasetError) as error:
        unpack("zenodo.x", archive, tmp_path / "out")
    assert cause in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_windows_path_unpacks_into_its_folder_and_old_files_are_cleared(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "from_last_version.csv").write_text("stale")
    archive = make_zip(tmp_path / "a.zip", {"data\\counts.csv": b"a\n1\n", "./README.md": b"hi"})
    assert unpack("kaggle.x", archive, tmp_path / "out") == [
        tmp_path / "out" / "README.md",
        tmp_path / "out" / "data" / "counts.csv",
    ]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["README.md", "counts.csv", "data"]


def test_a_truncated_zip_is_named_as_such(tmp_path):
    whole = make_zip(tmp_path / "whole.zip", {"counts.csv": b"gene,n\n" * 1000}).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match=r"^zenodo\.x: cut\.zip: a corrupt or truncated zip archive"):
        unpack("zenodo.x", tmp_path / "cut.zip", tmp_path / "out")


def test_a_truncated_tar_gz_and_a_corrupt_member_name_the_cause(tmp_path):
    import os

    body = os.urandom(200_000)  # incompressible: cutting the file cuts the member
    whole = make_tar(tmp_path / "whole.tar.gz", {"counts.csv": body}).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match=r"^zenodo\.x: cut\.tar\.gz: .*cannot be read: .*\(corrupt or truncated\)"):
        unpack("zenodo.x", tmp_path / "cut.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # no half-written member left behind

    with zipfile.ZipFile(tmp_path / "flipped.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("counts.csv", b"gene,n\nTP53,4\n" * 100)
    data = bytearray((tmp_path / "flipped.zip").read_bytes())
    data[data.index(b"TP53") + 200] ^= 0xFF  # a bit flipped in the stored body: the CRC no longer matches
    (tmp_path / "flipped.zip").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"^zenodo\.x: flipped\.zip: member 'counts\.csv' cannot be read: Bad CRC"):
        unpack("zenodo.x", tmp_path / "flipped.zip", tmp_path / "out")


def test_an_encrypted_member_is_refused(tmp_path):
    path = make_zip(tmp_path / "locked.zip", {"counts.csv": b"gene,n\n"})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose bit 0: encrypted
        at = data.index(signature) + offset
        data[at] |= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"^kaggle\.x: locked\.zip: member 'counts\.csv' is encrypted"):
        unpack("kaggle.x", path, tmp_path / "out")


def test_an_archive_larger_than_the_free_space_is_refused_before_writing(tmp_path):
    import shutil

    from omicslake.archives import Member, checked

    free = shutil.disk_usage(tmp_path).free
    members = [Member("a.csv", "file", free // 2 + 1), Member("b.csv", "file", free // 2 + 1)]
    with pytest.raises(DatasetError, match=r"^zenodo\.x: big\.zip: unpacks to [\d,]+ bytes but .* free"):
        checked("zenodo.x", tmp_path / "big.zip", tmp_path, members)
