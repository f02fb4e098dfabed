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
    assert list((tmp_path / "out").rglob("*")) == [tmp_path / "out" / "deep"]  # nothing written
    assert not (tmp_path / "evil.csv").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"plain text")
    with pytest.raises(DatasetError, match=r"^kaggle\.x: x\.zip: not a zip or tar archive"):
        unpack("kaggle.x", tmp_path / "x.zip", tmp_path / "out")
